"""python -m minilm.serve as a user runs it: its command line, and the real server (uvicorn on a loopback port)
stopped with SIGTERM while a request is in flight: the request completes, new connections are refused."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from common.errors import run_command
from minilm.serve.__main__ import main
from minilm.serve.config import ServeConfig
from minilm.training.cli import parse_args
from serve_fixtures import model_folders

REPO = Path(__file__).resolve().parents[1]


def test_ckpt_may_be_given_several_times():
    cfg = parse_args({}, {"serve": ServeConfig}, ["--ckpt", "out/a", "--ckpt", "b=out/b"])["serve"]
    assert cfg.ckpt == ["out/a", "b=out/b"] and cfg.host == "127.0.0.1"


def test_a_folder_that_is_not_a_model_is_an_error_line_and_exit_2(tmp_path, capsys):
    assert run_command(main, ["--ckpt", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --ckpt {tmp_path / 'missing'}: not a model folder")


def test_without_ckpt_the_command_says_it_is_required(capsys):
    assert run_command(main, []) == 2
    assert "--ckpt" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(base: str, process, seconds: float = 90) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert process.poll() is None, process.stdout.read()
        try:
            httpx.get(f"{base}/health", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"the server did not answer within {seconds} s")


@pytest.mark.slow
def test_sigterm_lets_the_request_in_flight_finish_and_refuses_new_connections(one_thread):
    port, n_tokens = free_port(), 800
    process = subprocess.Popen([sys.executable, "-m", "minilm.serve", "--ckpt", f"gpt={model_folders()['gpt']}",
                                "--port", str(port), "--threads", "1", "--max_new_tokens", str(n_tokens)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        request = {"prompt": "the", "max_new_tokens": n_tokens, "stream": True}
        with httpx.stream("POST", f"{base}/v1/generate", json=request, timeout=60) as response:
            lines = response.iter_lines()
            assert next(lines) == "event: token"  # the generation is under way
            process.send_signal(signal.SIGTERM)
            with pytest.raises(httpx.ConnectError):  # the listening socket closes at once
                for _ in range(20):
                    httpx.get(f"{base}/health", timeout=1)
                    time.sleep(0.1)
            rest = list(lines)  # read to the end of the stream
        events = [line for line in rest if line.startswith("event: ")]
        assert events[-1] == "event: done" and len(events) > 10  # tokens kept coming after the signal
        done = json.loads(rest[rest.index("event: done") + 1].removeprefix("data: "))
        assert done["tokens"] == n_tokens and done["finish_reason"] == "length"
        assert process.wait(timeout=60) == -signal.SIGTERM  # uvicorn exits as a SIGTERM'd process (143)
        assert "Finished server process" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
