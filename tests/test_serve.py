"""python -m minilm.serve, through FastAPI's TestClient: each endpoint answers what the model itself computes
(finetune.py predict's labels and tags, the MLM head's probabilities, mean-pooled hidden states, GPT.generate),
streaming adds up to the whole text, and a batch of waiting requests answers as each would alone."""

import asyncio
import threading
import time
from dataclasses import replace

import pytest
import torch

import finetune
from finetune_fixtures import VOCAB, tiny_wordpiece
from minilm import from_pretrained
from minilm.serve.config import ServeConfig
from minilm.serve.metrics import Metrics
from minilm.serve.models import load_served_model, parse_model_specs
from minilm.serve.scheduler import Job
from minilm.serve.schemas import ClassifyRequest
from minilm.serve.service import Service
from serve_fixtures import model_folders, served_models, serving, sse_events

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folders(one_thread):
    return model_folders()


@pytest.fixture(scope="module")
def models(folders):
    return served_models()


@pytest.fixture(scope="module")
def client(models):
    with serving(models) as client:
        yield client


# ---------------------------------------------------------------------------------------- what is loaded

def test_models_lists_each_model_with_the_endpoints_it_serves(client):
    listed = {m["id"]: m["endpoints"] for m in client.get("/v1/models").json()["data"]}
    assert listed == {"gpt": ["generate"], "sentiment": ["classify", "embed"], "tagger": ["tag", "embed"],
                      "mlm": ["fill-mask", "embed"], "hf-bert": ["embed"]}


def test_health_says_ok_and_how_many_models(client):
    assert client.get("/health").json() == {"status": "ok", "models": 5, "queue_depth": 0}


def test_openapi_schema_lists_every_endpoint_and_docs_page_is_served(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/generate", "/v1/classify", "/v1/tag", "/v1/fill-mask", "/v1/embed", "/v1/models", "/health",
            "/metrics"} <= set(paths)
    assert "swagger" in client.get("/docs").text.lower()


def test_a_bare_folder_is_named_after_its_run_and_names_must_differ():
    assert parse_model_specs(["out/sentiment/best", "gpt=out/x"]) == {"sentiment": "out/sentiment/best", "gpt": "out/x"}
    with pytest.raises(ValueError, match="two models are named 'x'"):
        parse_model_specs(["out/x", "x=out/y"])


# ---------------------------------------------------------------------------------------- each endpoint

def test_classify_gives_the_labels_and_probabilities_of_finetune_predict(client, folders):
    texts = ["the film was good", "the plot is very dull", "a movie"]
    results = client.post("/v1/classify", json={"texts": texts}).json()["results"]
    expected = finetune.predict(folders["sentiment"], texts)
    assert [r["label"] for r in results] == [label for label, _ in expected]
    assert [r["score"] for r in results] == pytest.approx([p for _, p in expected], abs=1e-5)
    assert all(sum(r["probabilities"].values()) == pytest.approx(1.0) for r in results)


def test_classify_reads_a_pair_as_two_segments(client, models):
    pair = client.post("/v1/classify", json={"texts": [["the film", "was good"]]}).json()["results"][0]
    joined = client.post("/v1/classify", json={"texts": ["the film was good"]}).json()["results"][0]
    served = models["sentiment"]
    inputs = served.tokenizer.encode_plus("the film", "was good")
    with torch.no_grad():
        logits, _ = served.model(torch.tensor([inputs["input_ids"]]),
                                 token_type_ids=torch.tensor([inputs["token_type_ids"]]))
    assert pair["score"] == pytest.approx(float(logits.softmax(-1).max()), abs=1e-5)
    assert pair["score"] != pytest.approx(joined["score"], abs=1e-6)  # segment B is not segment A


def test_tag_gives_the_tags_of_finetune_predict_and_their_entities(client, folders):
    text = "john lives in paris"
    body = client.post("/v1/tag", json={"text": text}).json()
    [expected] = finetune.predict(folders["tagger"], [text])
    assert [(w["word"], w["tag"]) for w in body["words"]] == expected
    assert body["entities"] == [{"type": "PER", "start": 0, "end": 0, "text": "john"},
                                {"type": "LOC", "start": 3, "end": 3, "text": "paris"}]


def test_fill_mask_scores_are_the_mlm_head_probabilities_at_each_mask(client, models):
    body = client.post("/v1/fill-mask", json={"text": "john [MASK] in paris [MASK]", "top_k": 3}).json()
    tokenizer, model = models["mlm"].tokenizer, models["mlm"].model
    ids = [tokenizer.cls_id, *tokenizer.encode("john"), tokenizer.mask_id, *tokenizer.encode("in paris"),
           tokenizer.mask_id, tokenizer.sep_id]
    with torch.no_grad():
        probs = model(torch.tensor([ids])).mlm_logits[0].softmax(-1)  # (T, vocab)
    for fillers, position in zip(body["masks"], [2, 5], strict=True):
        scores, top = probs[position].topk(3)
        assert [f["token"] for f in fillers] == [VOCAB[i] for i in top]
        assert [f["score"] for f in fillers] == pytest.approx(scores.tolist(), abs=1e-6)


def test_embed_is_the_mean_hidden_state_over_each_texts_own_tokens(client, folders):
    texts = ["the film", "the movie was very good ."]  # different lengths: the short one is padded in the batch
    body = client.post("/v1/embed", json={"model": "hf-bert", "texts": texts}).json()
    bert, tokenizer = from_pretrained(folders["hf-bert"]), tiny_wordpiece()
    for vector, text in zip(body["embeddings"], texts, strict=True):
        with torch.no_grad():
            hidden, _ = bert(torch.tensor([tokenizer.encode_plus(text)["input_ids"]]))  # (1, T, C)
        assert vector == pytest.approx(hidden[0].mean(dim=0).tolist(), abs=1e-5)
    assert body["dimensions"] == 32


def test_embed_with_normalize_gives_unit_vectors_in_the_same_direction(client):
    plain = client.post("/v1/embed", json={"texts": ["the film"]}).json()["embeddings"][0]
    unit = client.post("/v1/embed", json={"texts": ["the film"], "normalize": True}).json()["embeddings"][0]
    length = sum(x * x for x in plain) ** 0.5
    assert unit == pytest.approx([x / length for x in plain], abs=1e-6)


def test_greedy_generate_continues_the_prompt_as_gpt_generate_does(client, models):
    body = client.post("/v1/generate", json={"prompt": "the ", "max_new_tokens": 12, "temperature": 0}).json()
    served = models["gpt"]
    prompt = torch.tensor([served.tokenizer.encode("the ")])
    expected = served.model.generate(prompt, 12, temperature=0)[0, prompt.size(1):]
    assert body == {"model": "gpt", "text": served.tokenizer.decode(expected.tolist()), "tokens": 12,
                    "finish_reason": "length"}


def test_the_same_seed_gives_the_same_sample_and_another_seed_another(client):
    ask = lambda seed: client.post("/v1/generate", json={"prompt": "the", "max_new_tokens": 30, "seed": seed,
                                                         "temperature": 1.0}).json()["text"]
    assert ask(7) == ask(7)
    assert ask(7) != ask(8)


def test_streamed_tokens_arrive_as_events_that_add_up_to_the_sampled_text(client):
    request = {"prompt": "the", "max_new_tokens": 20, "seed": 3}
    response = client.post("/v1/generate", json={**request, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds == ["token"] * (len(events) - 1) + ["done"] and len(events) > 5
    streamed = "".join(data["text"] for kind, data in events[:-1])
    assert streamed == events[-1][1]["text"] == client.post("/v1/generate", json=request).json()["text"]


def test_a_classify_request_is_answered_while_a_long_generation_runs(models):
    with serving(models, ["gpt", "sentiment"], max_new_tokens=1000) as client:
        request = {"prompt": "the", "max_new_tokens": 1000}
        generation = threading.Thread(target=client.post, args=("/v1/generate",), kwargs={"json": request})
        generation.start()
        registry = client.app.state.service.metrics.registry
        while not registry.get_sample_value("minilm_generated_tokens_total", {"model": "gpt"}):
            time.sleep(0.005)  # the generation is under way
        assert client.post("/v1/classify", json={"texts": ["good"]}).status_code == 200
        assert generation.is_alive()  # the classify request did not wait behind the generation
        generation.join()


# ---------------------------------------------------------------------------------------- batching

def test_waiting_requests_share_one_forward_pass_and_get_the_answers_they_get_alone(models):
    texts = ["the film was good", "a movie", "the plot is very very dull", "fine"]
    service = Service({"sentiment": models["sentiment"]}, ServeConfig(ckpt=["sentiment"]), Metrics())

    async def ask_all():
        loop = asyncio.get_running_loop()
        jobs = [Job(("sentiment", "classify"), 1, ClassifyRequest(texts=[text]), time.monotonic() + 30, loop,
                    loop.create_future()) for text in texts]
        for job in jobs:  # all queued before the worker starts: it takes them as one batch
            service.lanes["encode"].submit(job)
        service.start()
        answers = await asyncio.gather(*(job.future for job in jobs))
        service.stop()
        return answers

    batched = asyncio.run(ask_all())
    batch_sizes = service.metrics.registry.get_sample_value("minilm_batch_texts_sum"), \
        service.metrics.registry.get_sample_value("minilm_batch_texts_count")
    assert batch_sizes == (4.0, 1.0)
    with serving(models, ["sentiment"], max_batch=1) as alone:
        for text, answer in zip(texts, batched, strict=True):
            single = alone.post("/v1/classify", json={"texts": [text]}).json()["results"][0]
            assert answer["results"][0]["score"] == pytest.approx(single["score"], abs=1e-5)


def test_an_int8_checkpoint_of_minilm_compress_serves_through_the_same_loaders(folders, models, tmp_path):
    from minilm.compress.__main__ import main as compress
    int8 = compress(["quantize", folders["sentiment"], str(tmp_path / "int8"), "--evaluate", "false"])
    texts = ["the film was good", "the plot is very dull"]
    with serving({"int8": load_served_model("int8", str(int8)), "fp32": replace(models["sentiment"], name="fp32")}) \
            as client:
        answers = {name: client.post("/v1/classify", json={"model": name, "texts": texts}).json()["results"]
                   for name in ("int8", "fp32")}
    assert [r["label"] for r in answers["int8"]] == [r["label"] for r in answers["fp32"]]
    assert [r["score"] for r in answers["int8"]] == pytest.approx([r["score"] for r in answers["fp32"]], abs=0.05)
