"""Tiny models for the serve tests, each written the way the project's own commands write it (a train_*.py
checkpoint, finetune.py's output, a Hugging Face folder), so the server loads them through the real loaders.
No download; a few seconds in all, once per test session (model_folders, served_models)."""

import atexit
import functools
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from fastapi.testclient import TestClient

import finetune
from finetune_fixtures import VOCAB, save_base, save_bert_base, save_gpt_base, sentiment_rows, tiny_wordpiece, write_csv
from minilm import Bert, BertConfig, BertForPreTraining, save_pretrained
from minilm.serve.app import create_app
from minilm.serve.config import ServeConfig
from minilm.serve.metrics import Metrics
from minilm.serve.models import load_served_model
from minilm.serve.service import Service

GPT_TEXT = "the film was good. the plot was bad, very dull.\n"
TAG_SENTENCES = [
    "john/B-PER lives/O in/O paris/B-LOC ./O",
    "the/O film/O is/O good/O ./O",
    "john/B-PER was/O in/O paris/B-LOC ,/O very/O happy/O",
    "a/O movie/O in/O paris/B-LOC was/O dull/O",
] * 6


def tiny_mlm_bert(seed: int = 0) -> BertForPreTraining:
    torch.manual_seed(seed)
    return BertForPreTraining(BertConfig(vocab_size=len(VOCAB), block_size=32, n_layer=2, n_head=2, n_embd=32,
                                         n_inner=64, dropout=0.0, attn_dropout=0.0, init_std=0.3))


def finetune_tiny(folder, task: str, base, data, max_iters: int = 6):
    """A few steps of `finetune.py` on the tiny BERT: enough to write a real fine-tuned checkpoint."""
    finetune.main(["--task", task, "--base", str(base), "--data", str(data), "--method", "full", "--lr", "1e-2",
                   "--max_iters", str(max_iters), "--batch_size", "8", "--warmup_iters", "1", "--eval_interval",
                   str(max_iters), "--eval_iters", "1", "--out_dir", str(folder), "--device", "cpu",
                   "--progress", "false", "--head_dropout", "0", "--max_length", "32"])
    return folder


def build_model_folders(root) -> dict[str, str]:
    """{name: folder} for one model of each kind the server loads."""
    bert_base = save_bert_base(root / "bert-base")
    reviews = write_csv(root / "reviews.csv", sentiment_rows(40))
    tags = root / "tags.txt"
    tags.write_text("\n".join(TAG_SENTENCES) + "\n", encoding="utf-8")
    hf_bert = root / "hf-bert"
    torch.manual_seed(1)
    save_pretrained(Bert(BertConfig(vocab_size=len(VOCAB), block_size=32, n_layer=2, n_head=2, n_embd=32,
                                    n_inner=64)), hf_bert)
    (hf_bert / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return {
        "gpt": str(save_gpt_base(root / "gpt", GPT_TEXT)),
        "sentiment": str(finetune_tiny(root / "sentiment", "classify", bert_base, reviews)),
        "tagger": str(finetune_tiny(root / "tagger", "tag", bert_base, tags, max_iters=20)),
        "mlm": str(save_base(root / "mlm", tiny_mlm_bert(), tiny_wordpiece())),
        "hf-bert": str(hf_bert),
    }


@functools.cache
def model_folders() -> dict[str, str]:
    """build_model_folders once per test session, in a temporary folder removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="minilm-serve-test-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return build_model_folders(root)


@functools.cache
def served_models() -> dict:
    """The models of model_folders, loaded as the server loads them (shared: the tests only read them)."""
    return {name: load_served_model(name, folder) for name, folder in model_folders().items()}


@contextmanager
def serving(models, names=None, start=True, **flags):
    """A TestClient on an app serving models (or those of names); start=False leaves the workers off."""
    chosen = {name: models[name] for name in (names or models)}
    service = Service(chosen, ServeConfig(ckpt=list(chosen), **flags), Metrics())
    client = TestClient(create_app(service))
    if not start:
        yield client
        return
    with client:  # runs the lifespan: the worker threads start, and stop at the end
        yield client


def sse_events(text: str) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a server-sent-events body."""
    events = []
    for block in text.strip().split("\n\n"):
        kind, data = block.split("\n")
        events.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events
