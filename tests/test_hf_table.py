"""The name table in minilm/hf/names.py: complete, and shown unchanged in docs/hf_weights.md."""

from pathlib import Path

import pytest

from minilm import GPT, Bert, BertConfig, BertForPreTraining, GPTConfig
from minilm.hf.names import TIED, format_table, mappings_for

DOC = Path(__file__).resolve().parents[1] / "docs" / "hf_weights.md"
MODELS = {
    "GPT": lambda: GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=8)),
    "Bert": lambda: Bert(BertConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=8)),
    "BertForPreTraining": lambda: BertForPreTraining(
        BertConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=8)),
}


@pytest.mark.parametrize("name", MODELS)
def test_table_maps_every_parameter_exactly_once(name):
    model = MODELS[name]()
    mapped = [n for m in mappings_for(model) for n in m.minilm]
    assert sorted(mapped) == sorted(model.state_dict())


@pytest.mark.parametrize("name", ["GPT", "BertForPreTraining"])
def test_tied_rows_name_parameters_that_share_the_embedding(name):
    model = MODELS[name]()
    params = model.state_dict(keep_vars=True)
    tied = [m for m in mappings_for(model) if m.how == TIED]
    by_hf = {m.hf: m for m in mappings_for(model)}
    assert tied and all(params[m.minilm[0]] is params[by_hf[m.tied_to].minilm[0]] for m in tied)


def test_docs_show_the_table_from_hf_py():
    text = DOC.read_text()
    start, end = "<!-- name-table:start -->\n", "<!-- name-table:end -->"
    assert text[text.index(start) + len(start): text.index(end)] == format_table()
