"""BERT weights from Hugging Face: the real all-MiniLM-L6-v2 checkpoint, and random-init
BertForPreTraining checkpoints that transformers saves, against transformers' own models."""

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

from data.assets import fetch
from minilm import Bert, BertConfig, BertForPreTraining, from_pretrained, save_pretrained

TOL = 1e-5
GOLDEN_IDS = [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102]
TINY = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=40)
SINGLES = ["The quick brown fox jumps over the lazy dog.", "Hello world!", "A longer sentence, with a comma."]
PAIRS = [("How old are you?", "I am six."), ("Where is it?", "Under the table by the old green door.")]


@pytest.fixture(scope="module")
def minilm_folder():
    fetch("minilm-l6-config")
    fetch("bert-uncased-vocab")
    return fetch("minilm-l6-weights").parent  # config.json + model.safetensors + vocab.txt


@pytest.fixture(scope="module")
def minilm_model(minilm_folder):
    return from_pretrained(minilm_folder, Bert)


def max_diff(a, b):
    return (a - b).abs().max().item()


@torch.no_grad()
def test_golden_last_hidden_state_sum(minilm_model):
    hidden, _ = minilm_model(torch.tensor([GOLDEN_IDS]))
    assert hidden.shape == (1, 12, 384)
    assert hidden.sum().item() == pytest.approx(10.002666, abs=1e-3)


@torch.no_grad()
def test_golden_first_hidden_values(minilm_model):
    hidden, _ = minilm_model(torch.tensor([GOLDEN_IDS]))
    expected = torch.tensor([0.04644, 0.33806, 0.20821, 0.6468, -0.19571])
    assert max_diff(hidden[0, 0, :5], expected) <= 1e-4


# ------------------------------------------------------------------ against transformers

def _transformers():
    """transformers is the reference (requirements-dev.txt); minilm itself never imports it."""
    import transformers
    return transformers


@pytest.fixture(scope="module")
def reference_bert(minilm_folder):
    return _transformers().BertModel.from_pretrained(minilm_folder, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def batches(minilm_folder):
    tokenizer = _transformers().BertTokenizerFast(vocab_file=str(minilm_folder / "vocab.txt"))
    singles = tokenizer(SINGLES, padding=True, return_tensors="pt")
    pairs = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
    assert (singles["attention_mask"] == 0).any() and (pairs["token_type_ids"] == 1).any()
    return {"singles": singles, "pairs": pairs}


def _both(model, reference, batch):
    ids, types, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    with torch.no_grad():
        hidden, pooled = model(ids, token_type_ids=types, attention_mask=mask)
        out = reference(input_ids=ids, token_type_ids=types, attention_mask=mask)
    return hidden, pooled, out, mask.bool()


@pytest.mark.parametrize("kind", ["singles", "pairs"])
def test_last_hidden_state_matches_transformers_on_padded_batch(minilm_model, reference_bert, batches, kind):
    hidden, _, out, real = _both(minilm_model, reference_bert, batches[kind])
    assert max_diff(hidden[real], out.last_hidden_state[real]) <= TOL


@pytest.mark.parametrize("kind", ["singles", "pairs"])
def test_pooled_output_matches_transformers_on_padded_batch(minilm_model, reference_bert, batches, kind):
    _, pooled, out, _ = _both(minilm_model, reference_bert, batches[kind])
    assert max_diff(pooled, out.pooler_output) <= TOL


def test_position_ids_buffer_is_skipped_without_a_warning(minilm_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an "unused tensor" warning would fail the test
        from_pretrained(minilm_folder, Bert)


def test_checkpoint_without_heads_warns_which_heads_are_fresh(minilm_folder):
    with pytest.warns(UserWarning, match="no weights for mlm_head, nsp_head: freshly initialised"):
        from_pretrained(minilm_folder, BertForPreTraining)


def test_backbone_of_pretraining_model_equals_plain_bert(minilm_folder, minilm_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fresh-heads warning, tested above
        backbone = from_pretrained(minilm_folder, BertForPreTraining).bert.state_dict()
    plain = minilm_model.state_dict()
    assert all(torch.equal(backbone[name], plain[name]) for name in plain)


def test_import_then_export_gives_the_same_tensors(minilm_folder, minilm_model, tmp_path):
    save_pretrained(minilm_model, tmp_path)
    original, exported = load_file(minilm_folder / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert exported.keys() == original.keys() - {"embeddings.position_ids"}
    assert all(torch.equal(original[name], exported[name]) for name in exported)


# ------------------------------------------------------------------ BertForPreTraining heads

@pytest.fixture(scope="module")
def tiny_pretraining(tmp_path_factory):
    transformers = _transformers()
    torch.manual_seed(0)
    config = transformers.BertConfig(**TINY, attn_implementation="eager")
    reference = transformers.BertForPreTraining(config).eval()
    folder = tmp_path_factory.mktemp("bert_pretraining")
    reference.save_pretrained(folder)
    return reference, folder


def _pretraining_inputs():
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, TINY["vocab_size"], (3, 14), generator=gen)
    types = torch.zeros_like(ids)
    types[:, 7:] = 1
    mask = torch.ones_like(ids)
    mask[1, 10:], mask[2, 4:] = 0, 0
    return ids, types, mask


@torch.no_grad()
def test_mlm_logits_match_transformers_pretraining_heads(tiny_pretraining):
    reference, folder = tiny_pretraining
    ids, types, mask = _pretraining_inputs()
    got = from_pretrained(folder, BertForPreTraining)(ids, types, mask).mlm_logits
    expected = reference(input_ids=ids, token_type_ids=types, attention_mask=mask).prediction_logits
    real = mask.bool()
    assert max_diff(got[real], expected[real]) <= TOL


@torch.no_grad()
def test_nsp_logits_match_transformers_pretraining_heads(tiny_pretraining):
    reference, folder = tiny_pretraining
    ids, types, mask = _pretraining_inputs()
    got = from_pretrained(folder, BertForPreTraining)(ids, types, mask).nsp_logits
    expected = reference(input_ids=ids, token_type_ids=types, attention_mask=mask).seq_relationship_logits
    assert max_diff(got, expected) <= TOL


def test_legacy_names_load_the_same_weights(tiny_pretraining, tmp_path):
    """Older files: LayerNorm gamma/beta, the decoder's weight and bias stored again, a .bin pickle."""
    _, folder = tiny_pretraining
    state = {}
    for name, tensor in load_file(folder / "model.safetensors").items():
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        state[name] = tensor
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    state["bert.embeddings.position_ids"] = torch.arange(TINY["max_position_embeddings"])[None]
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    torch.save(state, tmp_path / "pytorch_model.bin")
    new, legacy = (from_pretrained(f, BertForPreTraining).state_dict() for f in (folder, tmp_path))
    assert all(torch.equal(new[name], legacy[name]) for name in new)


@torch.no_grad()
def test_saved_pretraining_model_loads_in_transformers_with_the_same_logits(tmp_path):
    transformers = _transformers()
    torch.manual_seed(2)
    config = BertConfig(vocab_size=120, block_size=40, n_layer=2, n_head=4, n_embd=32, n_inner=64)
    model = BertForPreTraining(config).eval()
    with torch.no_grad():  # give the MLM bias non-zero values so the round trip has something to carry
        model.mlm_head.decoder.bias.normal_()
    save_pretrained(model, tmp_path)
    reference = transformers.BertForPreTraining.from_pretrained(tmp_path, attn_implementation="eager").eval()
    ids, types, mask = _pretraining_inputs()
    out = reference(input_ids=ids, token_type_ids=types, attention_mask=mask)
    got = model(ids, types, mask)
    real = mask.bool()
    assert max_diff(got.mlm_logits[real], out.prediction_logits[real]) <= TOL
    assert max_diff(got.nsp_logits, out.seq_relationship_logits) <= TOL


@pytest.mark.parametrize("cls, architecture", [(Bert, "BertModel"), (BertForPreTraining, "BertForPreTraining")])
def test_saved_config_names_model_type_and_architecture(tmp_path, cls, architecture):
    save_pretrained(cls(BertConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=8)), tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["model_type"], saved["architectures"]) == ("bert", [architecture])


@pytest.mark.parametrize("cls", [Bert, BertForPreTraining])
def test_from_pretrained_without_a_class_builds_the_one_config_json_names(tmp_path, cls):
    save_pretrained(cls(BertConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=8)), tmp_path)
    assert type(from_pretrained(tmp_path)) is cls
