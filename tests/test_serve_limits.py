"""What python -m minilm.serve refuses, and how: each limit and each kind of bad input gets its own 4xx and a
message naming the field (never a 500); a full queue answers 503 at once, a slow request 504; the bearer token
and CORS; and /metrics counts what happened."""

import os
import threading
import time

import pytest

from minilm.serve.config import API_KEY_ENV, ServeConfig
from serve_fixtures import served_models, serving, sse_events

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = "a-long-enough-test-key"


@pytest.fixture(scope="module")
def models(one_thread):
    return served_models()


@pytest.fixture(scope="module")
def client(models):
    with serving(models, max_texts=4, max_text_chars=200, max_new_tokens=50, max_body_bytes=5_000) as client:
        yield client


def refusal(response, status: int, field):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field
    return body["detail"]


# ---------------------------------------------------------------------------------------- limits

def test_more_texts_than_max_texts_is_422_naming_texts_and_the_flag(client):
    detail = refusal(client.post("/v1/classify", json={"texts": ["good"] * 5}), 422, "texts")
    assert "--max_texts" in detail and "5 texts" in detail


def test_a_text_longer_than_the_context_is_refused_by_default_and_cut_when_asked(client):
    long_text = "the film was very good . " * 6  # 38 tokens with [CLS] and [SEP]; the context is 32
    detail = refusal(client.post("/v1/classify", json={"texts": ["fine", long_text]}), 422, "texts[1]")
    assert "38 tokens" in detail and "context of 32" in detail and '"truncate": true' in detail
    cut = client.post("/v1/classify", json={"texts": [long_text], "truncate": True})
    assert cut.status_code == 200 and cut.json()["results"][0]["label"] in ("pos", "neg")


def test_the_server_flag_truncate_makes_cutting_the_default(models):
    with serving(models, ["sentiment"], truncate=True) as client:
        assert client.post("/v1/classify", json={"texts": ["good " * 40]}).status_code == 200
        assert client.post("/v1/classify", json={"texts": ["good " * 40], "truncate": False}).status_code == 422


def test_tag_with_truncate_tags_the_words_that_fit_and_says_so(client):
    words = "john lives in paris . " * 8  # 40 words, 42 tokens
    refusal(client.post("/v1/tag", json={"text": words}), 422, "text")
    body = client.post("/v1/tag", json={"text": words, "truncate": True}).json()
    assert body["truncated"] and len(body["words"]) == 30  # 32 positions less [CLS] and [SEP]


def test_a_prompt_longer_than_the_context_is_refused_or_cut_to_its_end(client):
    prompt = "the film was good. " * 4  # 76 characters; the character GPT's context is 64
    refusal(client.post("/v1/generate", json={"prompt": prompt, "max_new_tokens": 2}), 422, "prompt")
    body = client.post("/v1/generate", json={"prompt": prompt, "max_new_tokens": 2, "truncate": True}).json()
    assert body["tokens"] == 2


def test_a_mask_cut_off_by_truncation_is_refused_rather_than_dropped(client):
    text = "the film " * 20 + "[MASK]"
    refusal(client.post("/v1/fill-mask", json={"text": text}), 422, "text")
    detail = refusal(client.post("/v1/fill-mask", json={"text": text, "truncate": True}), 422, "text")
    assert "past the model's context" in detail


@pytest.mark.parametrize("path, body, field", [
    ("/v1/classify", {"texts": ["fine", "a" * 201]}, "texts[1]"),
    ("/v1/generate", {"prompt": "a" * 201}, "prompt"),
    ("/v1/tag", {"text": "a " * 101}, "text"),
])
def test_a_text_over_max_text_chars_is_422_naming_it(client, path, body, field):
    assert "--max_text_chars" in refusal(client.post(path, json=body), 422, field)


def test_max_new_tokens_over_the_cap_is_422_naming_the_flag(client):
    detail = refusal(client.post("/v1/generate", json={"prompt": "the", "max_new_tokens": 51}), 422, "max_new_tokens")
    assert "--max_new_tokens" in detail


def test_the_default_max_new_tokens_is_held_to_the_cap(client):
    assert client.post("/v1/generate", json={"prompt": "the"}).json()["tokens"] == 50  # the default 64, capped


@pytest.mark.parametrize("field, value", [("temperature", 2.5), ("temperature", -0.1), ("top_p", 0.0),
                                          ("top_p", 1.5), ("top_k", 0), ("max_new_tokens", -1), ("seed", -1)])
def test_sampling_settings_out_of_range_are_422_naming_the_field(client, field, value):
    refusal(client.post("/v1/generate", json={"prompt": "the", field: value}), 422, field)


def test_a_body_over_max_body_bytes_is_413_whether_its_length_is_declared_or_not(client):
    big = b'{"texts": ["' + b"a" * 6_000 + b'"]}'
    headers = {"content-type": "application/json"}
    assert "--max_body_bytes" in refusal(client.post("/v1/classify", content=big, headers=headers), 413, None)
    chunked = client.post("/v1/classify", content=iter([big[:3000], big[3000:]]), headers=headers)  # no length
    refusal(chunked, 413, None)


# ---------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("body, status, field", [
    (b'{"texts": ["good"', 400, None),  # malformed JSON
    (b'{"texts": ["\xff\xfe good"]}', 400, None),  # not UTF-8
    (b'["good"]', 422, None),  # JSON, but not an object
    (b'{"texts": "good"}', 422, "texts"),  # a string where a list belongs
    (b'{"texts": [1]}', 422, "texts[0]"),
    (b'{"texts": [["only one"]]}', 422, "texts[0]"),  # a pair of one
    (b'{}', 422, "texts"),  # missing field
    (b'{"texts": []}', 422, "texts"),
    (b'{"texts": ["good"], "truncat": true}', 422, "truncat"),  # a misspelled field is not ignored
])
def test_bad_input_gets_its_4xx_and_names_the_field(client, body, status, field):
    response = client.post("/v1/classify", content=body, headers={"content-type": "application/json"})
    refusal(response, status, field)


def test_a_body_without_a_json_content_type_is_refused(client):
    refusal(client.post("/v1/classify", content=b'{"texts": ["good"]}'), 422, None)


def test_a_number_sent_as_a_string_is_refused_not_guessed(client):
    refusal(client.post("/v1/generate", json={"prompt": "the", "temperature": "0.5"}), 422, "temperature")


def test_an_unknown_model_is_404_and_an_endpoint_it_cannot_serve_is_400(client):
    assert "loaded: gpt (generate)" in refusal(client.post("/v1/classify", json={"model": "nope", "texts": ["a"]}),
                                               404, "model")
    detail = refusal(client.post("/v1/generate", json={"model": "sentiment", "prompt": "the"}), 400, "model")
    assert "cannot generate" in detail and "classify, embed" in detail


def test_an_endpoint_no_loaded_model_serves_is_400(models):
    with serving(models, ["gpt"]) as client:
        assert "no loaded model serves fill-mask" in refusal(client.post("/v1/fill-mask", json={"text": "[MASK]"}),
                                                             400, "model")


def test_a_prompt_the_vocabulary_cannot_spell_is_422_and_a_stream_says_so_before_it_starts(client):
    refusal(client.post("/v1/generate", json={"prompt": "QQQ"}), 422, "prompt")
    refusal(client.post("/v1/generate", json={"prompt": "QQQ", "stream": True}), 422, "prompt")


# ---------------------------------------------------------------------------------------- queue and time

def test_a_request_that_waits_past_request_timeout_gets_504(models):
    with serving(models, ["sentiment"], start=False, request_timeout=0.2) as client:  # no worker takes it
        detail = refusal(client.post("/v1/classify", json={"texts": ["good"]}), 504, None)
        assert "--request_timeout" in detail


def test_a_full_queue_answers_503_at_once_with_retry_after(models):
    with serving(models, ["sentiment"], start=False, max_queue=1, request_timeout=1.5) as client:
        waiting = threading.Thread(target=client.post, args=("/v1/classify",), kwargs={"json": {"texts": ["a"]}})
        waiting.start()  # takes the one place in the queue (no worker runs)
        while client.app.state.service.depth == 0:
            time.sleep(0.01)
        start = time.perf_counter()
        response = client.post("/v1/classify", json={"texts": ["good"]})
        assert time.perf_counter() - start < 0.8  # refused at once, not after the timeout
        assert "--max_queue" in refusal(response, 503, None)
        assert response.headers["retry-after"] == "1"
        waiting.join()


# ---------------------------------------------------------------------------------------- access

def test_with_an_api_key_every_v1_endpoint_and_metrics_need_the_bearer_token(models):
    with serving(models, ["sentiment"], api_key=KEY) as client:
        for path in ("/v1/models", "/metrics"):
            response = client.get(path)
            assert "Bearer" in refusal(response, 401, "Authorization")
            assert response.headers["www-authenticate"] == "Bearer"
        wrong = client.post("/v1/classify", json={"texts": ["a"]}, headers={"Authorization": "Bearer not-the-key"})
        refusal(wrong, 401, "Authorization")
        right = client.post("/v1/classify", json={"texts": ["a"]}, headers={"Authorization": f"Bearer {KEY}"})
        assert right.status_code == 200
        assert client.get("/health").status_code == 200  # a load balancer's probe needs no key


def test_the_api_key_can_come_from_the_environment(models, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, KEY)
    with serving(models, ["sentiment"]) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_cors_is_off_unless_an_origin_is_given(client, models):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/classify", headers=preflight).headers
    with serving(models, ["sentiment"], cors_origin=["https://app.example"]) as allowed:
        headers = allowed.options("/v1/classify", headers=preflight).headers
        assert headers["access-control-allow-origin"] == "https://app.example"


# ---------------------------------------------------------------------------------------- metrics

def metric(client, name: str, **labels) -> float:
    """One sample of /metrics, as a Prometheus scraper reads the text format."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_by_endpoint_and_status_and_the_tokens_generated(models):
    with serving(models, ["gpt", "sentiment"]) as client:
        for _ in range(3):
            client.post("/v1/classify", json={"texts": ["good"]})
        client.post("/v1/classify", json={"texts": []})
        client.get("/no/such/path")
        events = sse_events(client.post("/v1/generate", json={"prompt": "the", "max_new_tokens": 7,
                                                              "stream": True}).text)
        client.post("/v1/generate", json={"prompt": "the", "max_new_tokens": 5})
        assert metric(client, "minilm_requests_total", endpoint="/v1/classify", status="200") == 3
        assert metric(client, "minilm_requests_total", endpoint="/v1/classify", status="422") == 1
        assert metric(client, "minilm_requests_total", endpoint="other", status="404") == 1
        assert metric(client, "minilm_request_seconds_count", endpoint="/v1/generate") == 2
        assert metric(client, "minilm_generated_tokens_total", model="gpt") == events[-1][1]["tokens"] + 5 == 12
        assert metric(client, "minilm_queue_depth") == 0
        assert metric(client, "minilm_model_load_seconds", model="sentiment") > 0


def test_the_workers_share_the_cores_as_torch_threads():
    cores = len(os.sched_getaffinity(0))
    assert ServeConfig(ckpt=["x"], workers=1).torch_threads() == cores
    assert ServeConfig(ckpt=["x"], workers=cores * 2).torch_threads() == 1
    assert ServeConfig(ckpt=["x"], threads=3).torch_threads() == 3
