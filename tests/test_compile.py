"""torch.compile takes the written-out attention whole: one graph, no breaks, the eager numbers."""

import os
import subprocess
import sys

import pytest
import torch

import train_gpt
from distributed_runs import FLAGS, REPO, rows, write_text
from minilm import GPT, Bert, BertConfig, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("attn_impl", ["manual", "sdpa"])
def test_gpt_compiles_into_one_graph_without_breaks(attn_impl):
    model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32, attn_impl=attn_impl))
    input_ids = torch.randint(64, (2, 16))
    explained = torch._dynamo.explain(model)(input_ids, targets=input_ids)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)


def test_bert_with_a_padding_mask_compiles_into_one_graph_without_breaks():
    model = Bert(BertConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32, attn_impl="manual"))
    input_ids, attention_mask = torch.randint(64, (2, 16)), torch.ones(2, 16, dtype=torch.long)
    attention_mask[1, 10:] = 0
    explained = torch._dynamo.explain(model)(input_ids, attention_mask=attention_mask)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)


@pytest.mark.slow  # Inductor writes and builds C++ kernels for the forward and the backward (~20 s cold)
def test_compiled_training_with_written_out_attention_logs_the_eager_losses(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILM_CACHE", str(tmp_path / "cache"))
    text = write_text(tmp_path / "text.txt")
    flags = ["--data", str(text), "--batch_size", "4", "--attn_impl", "manual", *FLAGS, "--max_iters", "4",
             "--log_interval", "1"]
    train_gpt.main([*flags, "--out_dir", str(tmp_path / "eager")])
    # In its own interpreter: Inductor imports setuptools, which refuses to load once another test's
    # import has pulled in the standard library's distutils.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(REPO / "train_gpt.py"), *flags, "--out_dir",
                             str(tmp_path / "compiled"), "--compile"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    eager, compiled = ([row["loss"] for row in rows(tmp_path / name) if "loss" in row] for name in ("eager", "compiled"))
    assert len(compiled) == len(eager) > 0
    assert compiled == pytest.approx(eager, rel=1e-4)
