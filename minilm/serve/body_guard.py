"""An ASGI middleware that reads each request body before the app does, so a body too large or not UTF-8 is
refused with the service's error format before any JSON parsing (FastAPI's own messages name neither).

    Content-Length above --max_body_bytes            413 at once, nothing read
    a chunked body that grows past it                413 as soon as it does (it is never all held in memory)
    JSON that is not UTF-8 (RFC 8259 requires it)     400, naming the first bad byte
"""

import json

from starlette.datastructures import Headers


class BodyGuard:
    def __init__(self, app, max_bytes: int, body=None):
        self.app, self.max_bytes = app, max_bytes
        # body(path, status, message, field) -> (JSON body, status): the refusal in the endpoint's own shape
        self.body = body or (lambda path, status, message, field: ({"detail": message, "field": field}, status))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(scope, send, 413, self._too_large())
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._refuse(scope, send, 413, self._too_large())
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            return await self._refuse(scope, send, 400, f"request body: not valid UTF-8 (byte "
                                      f"0x{body[err.start]:02x} at position {err.start}); JSON must be sent as UTF-8")
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> str:
        return f"request body: larger than this server's {self.max_bytes:,} bytes (--max_body_bytes)"

    async def _refuse(self, scope, send, status: int, message: str) -> None:
        shaped, status = self.body(scope["path"], status, message, None)
        body = json.dumps(shaped).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive):
    """A receive() that hands the app the body already read, then passes on what follows (a disconnect)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
