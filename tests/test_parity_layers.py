"""The parity command's layer-by-layer report (minilm/parity_layers.py) for every family: with one block of
minilm's model perturbed, the first layer it names is that block (Llama's: tests/test_hf_llama.py)."""

import pytest
import torch

import minilm.parity as parity
from minilm.parity_layers import first_divergence, layer_diffs

import transformers
pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5
ENCODER = dict(vocab_size=61, hidden_size=16, num_attention_heads=2, intermediate_size=20, num_hidden_layers=3,
               max_position_embeddings=40)
FOLDERS = {  # transformers class, its config; every one 3 blocks deep
    "gpt2": ("GPT2LMHeadModel", lambda: transformers.GPT2Config(vocab_size=61, n_positions=64, n_embd=16, n_layer=3,
                                                                n_head=2, bos_token_id=None, eos_token_id=None)),
    "bert": ("BertForPreTraining", lambda: transformers.BertConfig(**ENCODER)),
    "distilbert": ("DistilBertModel", lambda: transformers.DistilBertConfig(
        vocab_size=61, dim=16, n_heads=2, hidden_dim=20, n_layers=3, max_position_embeddings=40)),
    "albert": ("AlbertForPreTraining", lambda: transformers.AlbertConfig(**ENCODER, embedding_size=8)),
    "electra": ("ElectraForPreTraining", lambda: transformers.ElectraConfig(**ENCODER, embedding_size=8)),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    made = {}

    def make(family):
        if family not in made:
            name, config = FOLDERS[family]
            torch.manual_seed(0)
            made[family] = tmp_path_factory.mktemp(family)
            getattr(transformers, name)(config()).save_pretrained(made[family])
        return made[family]
    return make


def perturb_block(model, block: int):
    """Move one MLP weight of one block (ALBERT: its one shared block, run at every depth)."""
    blocks = model.blocks if hasattr(model, "blocks") else model.bert.blocks
    with torch.no_grad():
        weight = blocks[block].mlp.fc_in.weight
        weight.add_(torch.randn_like(weight) * 0.01)
    return model


@pytest.mark.parametrize("family", FOLDERS)
def test_the_report_names_the_perturbed_block_first(folder, monkeypatch, family):
    loader = parity.from_pretrained
    monkeypatch.setattr(parity, "from_pretrained", lambda path, cls: perturb_block(loader(path, cls), 1))
    comparison = (parity.compare_decoder(folder(family), family, 5) if family == "gpt2"
                  else parity.compare_encoder(folder(family), parity.read_config(folder(family))))
    forward = comparison.forwards[0]
    rows = layer_diffs(comparison.ours, comparison.theirs, forward.ours, forward.theirs, forward.real)
    assert [row.layer for row in rows][:4] == ["embedding", "block 0", "block 1", "block 2"]
    expected = "block 0" if family == "albert" else "block 1"  # ALBERT's one block is already block 0
    assert first_divergence(rows, TOL).layer == expected


@pytest.mark.parametrize("family", ["gpt2", "albert"])
def test_every_layer_agrees_on_the_unchanged_model(folder, family):
    comparison = (parity.compare_decoder(folder(family), family, 5) if family == "gpt2"
                  else parity.compare_encoder(folder(family), parity.read_config(folder(family))))
    forward = comparison.forwards[0]
    rows = layer_diffs(comparison.ours, comparison.theirs, forward.ours, forward.theirs, forward.real)
    assert len(rows) == (6 if family == "gpt2" else 4) and first_divergence(rows, TOL) is None


def test_a_failure_after_the_last_layer_is_said_to_be_there(folder, monkeypatch, capsys):
    """minilm's logits shifted after lm_head ran: every hooked layer agrees, and the report says so."""
    original = parity.GPT.forward

    def shifted(self, *args, **kwargs):
        logits, loss = original(self, *args, **kwargs)
        return logits + 1e-3, loss

    monkeypatch.setattr(parity.GPT, "forward", shifted)
    assert parity.main([str(folder("gpt2")), "--tokens", "5"]) == 1
    assert "no hooked layer diverges: the difference arises after logits" in capsys.readouterr().out
