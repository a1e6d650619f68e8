"""The real `openai` Python client (a test-only dependency) against minilm's service on a real uvicorn on
127.0.0.1: a tiny chat model from a GGUF file, with --api_key, built from the command line as `python -m
minilm.serve` builds it (in a thread here: a second Python process would spend ~10 s importing torch; the slow
SmolLM2 test runs the command itself). A plain answer, a streamed one, and bad requests, each read the way the
client reads OpenAI's own service."""

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

from minilm.chat.load import load_chat_model
from minilm.chat.session import ChatSession
from minilm.serve.__main__ import load_models
from minilm.serve.app import create_app
from minilm.serve.config import ServeConfig
from minilm.serve.metrics import Metrics
from minilm.serve.service import Service
from minilm.training.cli import parse_args
from serve_chat_fixtures import free_port, running_server, write_chat_gguf
from test_serve_server import wait_until_up

REPO = Path(__file__).resolve().parents[1]
KEY = "a-long-enough-key"
QUESTION = "What is the capital of France?"


@contextmanager
def minilm_serve(*flags):
    """`python -m minilm.serve FLAGS` on a free port; yields an openai client pointed at it."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "minilm.serve", *flags, "--port", str(port), "--threads", "1",
                                "--api_key", KEY], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process, seconds=180)
        yield openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=120)
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory):
    return write_chat_gguf(tmp_path_factory.mktemp("openai") / "tiny.gguf")


@pytest.fixture(scope="module")
def client(gguf_path, one_thread):
    flags = ["--ckpt", str(gguf_path), "--max_new_tokens", "16", "--api_key", KEY]
    cfg = parse_args({}, {"serve": ServeConfig}, flags)["serve"]
    with running_server(create_app(Service(load_models(cfg.ckpt), cfg, Metrics()))) as base:
        yield openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def expected(gguf_path) -> str:
    """What `python -m minilm.chat` answers the question with the same model, greedily, in 8 tokens."""
    return "".join(ChatSession(load_chat_model(gguf_path)).reply(QUESTION, max_new_tokens=8))


def ask(client, **fields):
    return client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": QUESTION}],
                                          max_tokens=8, temperature=0, **fields)


def test_the_client_lists_the_model(client):
    assert [model.id for model in client.models.list()] == ["tiny"]


def test_the_client_gets_the_answer_minilm_chat_gives(client, expected):
    answer = ask(client)
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == expected
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_the_client_reads_a_streamed_answer_piece_by_piece(client, expected):
    pieces, finish, usage = [], None, None
    for chunk in ask(client, stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == expected and finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens >= len([p for p in pieces if p])


def test_a_bad_request_is_a_bad_request_error_naming_the_field(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="tiny", messages=[{"role": "robot", "content": "hi"}])
    assert refused.value.status_code == 400 and refused.value.param == "messages[0].role"
    with pytest.raises(openai.BadRequestError, match="only n=1"):
        ask(client, n=2)


def test_a_wrong_key_is_an_authentication_error(client):
    wrong = client.with_options(api_key="not-the-key")
    with pytest.raises(openai.AuthenticationError):
        ask(wrong)


@pytest.mark.slow
def test_smollm2_answers_that_paris_is_the_capital_of_france():
    with minilm_serve("--ckpt", "smollm2") as client:
        answer = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": QUESTION}],
                                                max_tokens=32, temperature=0)
    assert "Paris" in answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "stop"  # SmolLM2 ended its turn itself
