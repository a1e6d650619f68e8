"""MFU in the training log: FLOPs per token from the model's shape, over the device's peak; no guess for
a device the table does not know."""

import json

import pytest
import torch

from minilm import GPT, Bert, BertConfig, GPTConfig
from minilm.training import trainer as trainer_module
from minilm.training.throughput import flops_per_token, peak_flops
from minilm.training.trainer import Trainer
from test_trainer import ToyTask, tiny_gpt, train_config


def test_flops_per_token_of_gpt2_is_6n_plus_attention():
    model = GPT(GPTConfig.preset("gpt2"))
    n_multiplying = model.num_parameters() - 1024 * 768  # all but the position table (wpe)
    assert flops_per_token(model, 1024) == 6 * n_multiplying + 12 * 12 * 768 * 1024


def test_flops_per_token_leaves_out_bert_position_table_too():
    model = Bert(BertConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=8))
    assert flops_per_token(model, 16) == 6 * (model.num_parameters() - 16 * 8) + 12 * 1 * 8 * 16


def test_a_cpu_has_no_peak_and_gets_no_guess():
    assert peak_flops("cpu", "float32") is None


@pytest.mark.parametrize("name, dtype, tflops", [
    ("NVIDIA H200", "bfloat16", 989), ("NVIDIA H100 PCIe", "bfloat16", 756), ("NVIDIA A100-SXM4-80GB", "float32", 156)])
def test_a_known_gpu_gets_its_dense_peak_for_the_dtype(monkeypatch, name, dtype, tflops):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert peak_flops("cuda:0", dtype) == tflops * 1e12


def test_an_unknown_gpu_gets_no_guess(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU")
    assert peak_flops("cuda", "bfloat16") is None


def test_the_training_log_names_the_peak_unknown_on_a_cpu(tmp_path, capsys):
    Trainer(tiny_gpt(), ToyTask(), train_config(tmp_path / "out", max_iters=2), {"model_class": "GPT"}).run()
    assert "MFU: peak unknown for cpu (float32)" in capsys.readouterr().out


def test_a_known_peak_puts_the_mfu_in_every_logged_step(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "peak_flops", lambda device, dtype: 1e12)  # a pretend 1 TFLOP/s chip
    run = Trainer(tiny_gpt(), ToyTask(), train_config(tmp_path / "out", max_iters=2, log_interval=1),
                  {"model_class": "GPT"})
    run.run()
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "loss" in row]
    expected = [row["tokens_per_s"] * flops_per_token(run.model, 16) / 1e12 for row in steps]
    assert [row["mfu"] for row in steps] == pytest.approx(expected)
