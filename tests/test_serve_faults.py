"""The service under faults: a client that leaves mid-upload is counted apart (499), not as a 500; a shutdown
ends within --shutdown_timeout with every client answered (what waits: 503; a generation: the text it has,
finish_reason "shutdown"); a port in use or a host the machine lacks is `error: ...` and exit 2 before
uvicorn starts; a lone surrogate is refused (422) by every endpoint alike."""

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from common.errors import ConfigError, run_command
from minilm.serve.__main__ import main as serve_main
from minilm.serve.config import ServeConfig
from minilm.serve.limits import RequestError
from minilm.serve.metrics import Metrics
from minilm.serve.schemas import GenerateRequest
from minilm.serve.server import listening_sockets
from minilm.serve.service import Service
from serve_fixtures import model_folders, served_models, serving
from test_serve_server import free_port, wait_until_up

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(one_thread):
    return served_models()


# ------------------------------------------------------------------------------ a client that leaves

def test_a_client_that_leaves_mid_upload_is_counted_as_499_not_500(models):
    with serving(models, ["sentiment"]) as client:
        messages = iter([{"type": "http.request", "body": b'{"texts": ["a fi', "more_body": True},
                         {"type": "http.disconnect"}])
        sent = []

        async def receive():
            return next(messages)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/classify", "headers": [(b"content-length", b"40")],
                 "query_string": b"", "root_path": ""}
        asyncio.run(client.app(scope, receive, send))
        metrics = client.get("/metrics").text
    assert sent == []  # nothing was answered: there was nobody to answer
    assert 'minilm_requests_total{endpoint="/v1/classify",status="499"} 1.0' in metrics
    assert 'status="500"' not in metrics


# ------------------------------------------------------------------------------ shutdown

def long_generation(**fields) -> GenerateRequest:
    return GenerateRequest(prompt="the", max_new_tokens=1_000_000, **fields)  # longer than any test waits


async def shut_down_while(service: Service, *requests) -> tuple[list, float]:
    """Start the requests (the first one runs, the others wait for the one worker), begin a shutdown, and
    return what each request got and the seconds from the shutdown's start to the last answer."""
    service.start()
    tasks = [asyncio.ensure_future(request()) for request in requests]
    await asyncio.sleep(0.3)  # the first generation is under way
    start = time.monotonic()
    service.begin_shutdown()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - start
    service.stop()
    return results, elapsed


def shutdown_service(models, timeout: float = 1.0) -> Service:
    return Service({"gpt": models["gpt"]}, ServeConfig(ckpt=["gpt"], shutdown_timeout=timeout,
                                                       max_new_tokens=1_000_000), Metrics())


def test_at_shutdown_a_queued_request_gets_503_and_a_running_generation_its_text_in_time(models):
    service = shutdown_service(models)
    (running, queued), elapsed = asyncio.run(shut_down_while(
        service, lambda: service.answer("generate", long_generation()),
        lambda: service.answer("generate", GenerateRequest(prompt="the", max_new_tokens=5))))
    assert running["finish_reason"] == "shutdown" and running["tokens"] > 0
    assert isinstance(queued, RequestError) and queued.status == 503 and "shutting down" in queued.message
    assert elapsed < service.config.shutdown_timeout


def test_at_shutdown_a_stream_ends_with_its_done_event(models):
    service = shutdown_service(models)

    async def read_stream():
        return [chunk async for chunk in await service.stream(long_generation(stream=True))]

    (chunks,), elapsed = asyncio.run(shut_down_while(service, read_stream))
    kind, data = chunks[-1].decode().strip().split("\n")
    assert kind == "event: done" and json.loads(data.removeprefix("data: "))["finish_reason"] == "shutdown"
    assert elapsed < service.config.shutdown_timeout


def test_once_shutdown_began_a_new_request_is_503_at_once(models):
    service = shutdown_service(models)

    async def ask_after_shutdown():
        service.begin_shutdown()
        try:
            await service.answer("generate", GenerateRequest(prompt="the", max_new_tokens=2))
        except RequestError as refused:
            return refused.status
        finally:
            service.stop()

    assert asyncio.run(ask_after_shutdown()) == 503


@pytest.mark.slow
def test_sigterm_during_an_endless_stream_exits_within_shutdown_timeout(one_thread):
    port, timeout = free_port(), 3
    process = subprocess.Popen([sys.executable, "-m", "minilm.serve", "--ckpt", f"gpt={model_folders()['gpt']}",
                                "--port", str(port), "--threads", "1", "--max_new_tokens", "1000000",
                                "--shutdown_timeout", str(timeout)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        request = {"prompt": "the", "max_new_tokens": 1_000_000, "stream": True}
        with httpx.stream("POST", f"{base}/v1/generate", json=request, timeout=60) as response:
            lines = response.iter_lines()
            assert next(lines) == "event: token"
            start = time.monotonic()
            process.send_signal(signal.SIGTERM)
            rest = list(lines)
        assert process.wait(timeout=30) == -signal.SIGTERM
        elapsed = time.monotonic() - start
        events = [line for line in rest if line.startswith("event: ")]
        done = json.loads(rest[rest.index("event: done") + 1].removeprefix("data: "))
        assert events[-1] == "event: done" and done["finish_reason"] == "shutdown"
        assert elapsed < timeout + 1  # the process itself takes a moment to exit
    finally:
        if process.poll() is None:
            process.kill()


# ------------------------------------------------------------------------------ where it listens

def test_a_port_in_use_is_an_error_line_and_exit_2_before_uvicorn_starts(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_command(serve_main, ["--ckpt", model_folders()["gpt"], "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --port {port}: already in use") and "Traceback" not in err


@pytest.mark.parametrize("host, named", [("not a host", "--host 'not a host'"), ("192.0.2.1", "cannot listen there")])
def test_a_host_this_machine_cannot_listen_on_is_refused_naming_it(host, named):
    with pytest.raises(ConfigError, match=named):
        listening_sockets(host, 0)


def test_the_sockets_are_bound_to_the_port_asked_for():
    port = free_port()
    sockets = listening_sockets("127.0.0.1", port)
    try:
        assert [s.getsockname()[1] for s in sockets] == [port]
    finally:
        for s in sockets:
            s.close()


# ------------------------------------------------------------------------------ lone surrogates

LONE = '"good \\ud800 film"'  # JSON's escape of half a UTF-16 pair


@pytest.mark.parametrize("path, body, field", [
    ("/v1/classify", f'{{"texts": [{LONE}]}}', "texts[0]"),
    ("/v1/classify", f'{{"texts": [["fine", {LONE}]]}}', "texts[0]"),
    ("/v1/embed", f'{{"texts": ["fine", {LONE}]}}', "texts[1]"),
    ("/v1/tag", f'{{"text": {LONE}}}', "text"),
    ("/v1/fill-mask", f'{{"text": {LONE}}}', "text"),
    ("/v1/generate", f'{{"prompt": {LONE}}}', "prompt"),
    ("/v1/classify", f'{{"texts": ["fine"], "model": {LONE}}}', "model"),
])
def test_a_lone_surrogate_is_422_naming_the_field_on_every_endpoint(models, path, body, field):
    with serving(models) as client:
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json() == {"field": field, "detail": f"{field}: a lone surrogate (U+D800) at character 5, half "
                               "of a UTF-16 pair: not a character; send the character whole"}


def test_an_escaped_surrogate_pair_is_one_character_and_accepted(models):
    with serving(models, ["sentiment"]) as client:
        response = client.post("/v1/classify", content='{"texts": ["good \\ud83d\\ude00 film"]}',
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
