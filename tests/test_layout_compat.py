"""Checkpoints written before the layout move still load and resume (tests/fixtures/pre_layout/README.md)."""

import json
import shutil
from pathlib import Path

import pytest
import torch

import sample
import train_gpt
from minilm import BertConfig, BertForPreTraining
from minilm.training.checkpoint import load_checkpoint, load_model_weights
from test_train_gpt import write_text
from tokenizer import load_tokenizer

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pre_layout"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())

pytestmark = pytest.mark.usefixtures("one_thread")


def test_an_old_gpt_checkpoint_resumes_with_the_losses_the_old_code_gave(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    shutil.copytree(FIXTURES / "gpt_ckpt", out / "ckpt")
    text = write_text(tmp_path / "text.txt")
    train_gpt.main(["--data", str(text), "--out_dir", str(out), "--n_layer", "1", "--n_head", "2", "--n_embd", "16",
                    "--block_size", "16", "--batch_size", "4", "--max_iters", "14", "--eval_interval", "10",
                    "--eval_iters", "2", "--log_interval", "1", "--device", "cpu", "--progress", "false",
                    "--num_samples", "0", "--warmup_iters", "2", "--resume"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["loss"] for row in rows if "loss" in row] == EXPECTED["gpt_resumed_losses"]


def test_an_old_gpt_checkpoint_samples(capsys):
    texts = sample.main(["--ckpt", str(FIXTURES / "gpt_ckpt"), "--prompt", "to", "--num_samples", "1",
                         "--max_new_tokens", "5", "--seed", "0", "--device", "cpu"])
    assert len(texts[0]) == 7 and texts[0].startswith("to")


def test_an_old_bert_checkpoint_computes_what_the_old_code_computed():
    state_dict, config, _ = load_checkpoint(FIXTURES / "bert_best", with_train_state=False)
    model = BertForPreTraining(BertConfig.from_dict(config["model"])).eval()
    load_model_weights(model, state_dict)
    expected = EXPECTED["bert_best"]
    with torch.no_grad():
        out = model(torch.tensor(expected["input_ids"]), torch.tensor(expected["token_type_ids"]))
    assert out.mlm_logits.sum().item() == pytest.approx(expected["mlm_logits_sum"], abs=1e-5)
    torch.testing.assert_close(out.nsp_logits, torch.tensor(expected["nsp_logits"]), rtol=0, atol=1e-6)
    assert load_tokenizer(FIXTURES / "bert_best" / "tokenizer").vocab_size == config["model"]["vocab_size"]
