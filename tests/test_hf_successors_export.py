"""python -m minilm.hf.export on train_bert.py checkpoints of BERT's successors: a BertForMaskedLM with RoBERTa's
positions becomes RobertaForMaskedLM, a shared-layer BertForPreTraining AlbertForPreTraining, an Electra its
discriminator as ElectraForPreTraining; transformers loads each with minilm's outputs (max|Δ| <= 1e-5).
The checkpoints are written as train_bert.py writes them (save_checkpoint), without a training run."""

import contextlib
import io
import json

import pytest
import torch

from common.errors import run_command
from minilm.hf import export
from minilm.model import BertConfig, BertForMaskedLM, BertForPreTraining, Electra, ElectraConfig
from minilm.training.checkpoint import save_checkpoint
from test_hf_successors import MINILM_TINY, TOL, max_diffs, ours_outputs, padded_batch, perturb, theirs_outputs
from tokenizer import CharTokenizer

import transformers
pytestmark = pytest.mark.usefixtures("one_thread")

ROBERTA = BertConfig(**MINILM_TINY, positions_after_padding=True, pad_token_id=1, type_vocab_size=1, pooler=False)
ALBERT = BertConfig(**MINILM_TINY, embedding_size=16, share_layers=True)
ELECTRA = ElectraConfig(**MINILM_TINY, generator_n_embd=8, generator_n_head=1)  # E = n_embd: no projection
CHECKPOINTS = {  # transformers class exported -> (config.json's model_class, the model)
    "RobertaForMaskedLM": ("BertForMaskedLM", lambda: BertForMaskedLM(ROBERTA)),
    "AlbertForPreTraining": ("BertForPreTraining", lambda: BertForPreTraining(ALBERT)),
    "ElectraForPreTraining": ("Electra", lambda: Electra(ELECTRA)),
}


def write_checkpoint(folder, model_class: str, model):
    config = {"model_class": model_class, "model": model.config.to_dict()}
    return save_checkpoint(folder, model, config, write_extra=lambda tmp: CharTokenizer.train("abc").save(tmp / "tokenizer"))


@torch.no_grad()
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_an_exported_checkpoint_loads_in_transformers_with_minilms_outputs(tmp_path, name):
    model_class, build = CHECKPOINTS[name]
    torch.manual_seed(0)
    model = perturb(build(), seed=0)
    checkpoint = write_checkpoint(tmp_path / "ckpt", model_class, model)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert run_command(export.main, [str(checkpoint), str(tmp_path / "hf")]) == 0
    assert f"for transformers' {name}" in printed.getvalue()
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == [name]
    reference = getattr(transformers, name).from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    ours = model.discriminator if isinstance(model, Electra) else model
    inputs = padded_batch(ours.config, pair=ours.config.type_vocab_size > 1)
    diffs = max_diffs(ours_outputs(ours, *inputs), theirs_outputs(reference, *inputs))
    assert max(diffs.values()) <= TOL, diffs
