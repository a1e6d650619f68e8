"""The `python -m minilm.parity PATH` command: its verdicts and its error without transformers."""

import sys

import pytest
import torch

from common.errors import UserError
from data.assets import fetch
from minilm import GPT, GPTConfig, save_pretrained
from minilm.parity import main


@pytest.fixture(scope="module")
def tiny_gpt2_folder(tmp_path_factory):
    import transformers
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=61, n_positions=64, n_embd=16, n_layer=2, n_head=2,
                                     bos_token_id=None, eos_token_id=None)
    folder = tmp_path_factory.mktemp("parity_gpt2")
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_parity_passes_on_a_gpt2_folder(tiny_gpt2_folder, capsys):
    assert main([str(tiny_gpt2_folder)]) == 0
    report = capsys.readouterr().out
    assert "50 greedy tokens, KV cache" in report and "DIFFER" not in report


def test_parity_passes_on_the_real_minilm_bert_folder(capsys):
    import transformers  # noqa: F401 (the reference must be installed)
    fetch("minilm-l6-config")
    assert main([str(fetch("minilm-l6-weights").parent)]) == 0
    assert "pooled output" in capsys.readouterr().out


def test_parity_fails_when_minilm_computes_something_else(tiny_gpt2_folder, monkeypatch, capsys):
    original = GPT.forward

    def shifted(self, *args, **kwargs):  # a stand-in for a bug: every logit off by 1e-3
        logits, loss = original(self, *args, **kwargs)
        return logits + 1e-3, loss

    monkeypatch.setattr(GPT, "forward", shifted)
    assert main([str(tiny_gpt2_folder)]) == 1
    assert "TOO LARGE" in capsys.readouterr().out


def test_parity_without_transformers_exits_with_install_hint(tmp_path, monkeypatch):
    save_pretrained(GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=1, n_embd=4)), tmp_path)
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(UserError, match="transformers, which is not installed: pip install"):
        main([str(tmp_path)])
