"""uvicorn, with two things added around it: the port is opened before uvicorn starts, and SIGTERM is
passed on to the service so that a shutdown ends within --shutdown_timeout, every client answered.

    listening_sockets(host, port)   bind here, so a port in use or a host this machine does not have is
                                    `error: ...` and exit 2 (uvicorn would log it and exit 3)
    Server.shutdown                 uvicorn stops accepting and waits for the open connections; the service,
                                    told at once, answers what still waits with 503 and ends running
                                    generations before that wait runs out (Service.begin_shutdown)
"""

import errno
import socket

import uvicorn

from common.errors import ConfigError


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """A socket bound to each address host resolves to (as asyncio's create_server binds them), or the reason
    there can be none, naming the flag."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ConfigError(f"--host {host!r}: not an address or a name this machine can resolve ({err.strerror}); "
                          "use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)") from None
    sockets = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart at once
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as err:
        for sock in sockets:
            sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port}: already in use on {host} (another server?); stop it, or choose "
                              "another --port (0: any free port)") from None
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({err.strerror}); use an address "
                          "of this machine (127.0.0.1, 0.0.0.0) and a port above 1023") from None
    return sockets


class Server(uvicorn.Server):
    """uvicorn's Server, which tells the service when a shutdown begins (SIGTERM, Ctrl-C)."""

    def __init__(self, config: uvicorn.Config, service):
        super().__init__(config)
        self.service = service

    async def shutdown(self, sockets=None) -> None:
        self.service.begin_shutdown()
        await super().shutdown(sockets)


def serve(app, service, host: str, port: int) -> None:
    """Run the app until SIGTERM or Ctrl-C; return once every request in flight is answered (or refused)."""
    sockets = listening_sockets(host, port)
    bound = sockets[0].getsockname()
    print(f"listening on http://{host}:{bound[1]} (Ctrl-C or SIGTERM to stop)", flush=True)
    config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=service.config.shutdown_timeout)
    Server(config, service).run(sockets=sockets)
