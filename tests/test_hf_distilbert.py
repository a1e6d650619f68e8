"""DistilBERT through the name table: a Bert without token-type embeddings and pooler, read from and written
to Hugging Face DistilBertModel folders, against a randomly initialised transformers DistilBertModel."""

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

from common.errors import CheckpointError, ConfigError
from minilm import Bert, BertConfig, BertForPreTraining, from_pretrained, save_pretrained
from minilm.hf.names import mappings_for

TOL = 1e-5
TINY = dict(vocab_size=120, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=40)
DISTIL_SHAPE = dict(vocab_size=120, block_size=40, n_layer=2, n_head=4, n_embd=32, n_inner=64, type_vocab_size=0,
                    pooler=False)


def _transformers():
    """transformers is the reference (requirements-dev.txt); minilm itself never imports it."""
    import transformers
    return transformers


@pytest.fixture(scope="module")
def reference_folder(tmp_path_factory):
    """A randomly initialised transformers DistilBertModel and the folder it saved."""
    transformers = _transformers()
    torch.manual_seed(0)
    reference = transformers.DistilBertModel(transformers.DistilBertConfig(**TINY, attn_implementation="eager")).eval()
    folder = tmp_path_factory.mktemp("distilbert")
    reference.save_pretrained(folder)
    return reference, folder


def _inputs():
    ids = torch.randint(5, TINY["vocab_size"], (3, 14), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 10:], mask[2, 4:] = 0, 0  # two padded rows
    return ids, mask


def max_diff(a, b):
    return (a - b).abs().max().item()


def test_from_pretrained_builds_a_bert_without_segments_or_pooler(reference_folder):
    model = from_pretrained(reference_folder[1])
    assert type(model) is Bert
    assert (model.config.type_vocab_size, model.config.pooler) == (0, False)


@torch.no_grad()
def test_imported_model_matches_transformers_on_a_padded_batch(reference_folder):
    reference, folder = reference_folder
    ids, mask = _inputs()
    hidden, pooled = from_pretrained(folder, Bert)(ids, attention_mask=mask)
    expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert pooled is None
    assert max_diff(hidden[real], expected[real]) <= TOL


@torch.no_grad()
def test_saved_model_loads_in_transformers_with_the_same_hidden_states(tmp_path):
    transformers = _transformers()
    torch.manual_seed(2)
    model = Bert(BertConfig(**DISTIL_SHAPE)).eval()
    save_pretrained(model, tmp_path)
    reference = transformers.DistilBertModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    ids, mask = _inputs()
    hidden, _ = model(ids, attention_mask=mask)
    expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert max_diff(hidden[real], expected[real]) <= TOL


def test_import_then_export_gives_the_files_tensors_unchanged(reference_folder, tmp_path):
    _, folder = reference_folder
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no tensor of the file may go unused
        model = from_pretrained(folder)
    save_pretrained(model, tmp_path)
    original, exported = load_file(folder / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert exported.keys() == original.keys()
    assert all(torch.equal(original[name], exported[name]) for name in exported)


def test_saved_config_is_a_distilbert_one(tmp_path):
    save_pretrained(Bert(BertConfig(**DISTIL_SHAPE)), tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["model_type"], saved["architectures"], saved["dim"], saved["hidden_dim"]) == \
        ("distilbert", ["DistilBertModel"], 32, 64)


def test_table_maps_every_distilbert_parameter_exactly_once():
    model = Bert(BertConfig(**DISTIL_SHAPE))
    mapped = [n for m in mappings_for(model) for n in m.minilm]
    assert sorted(mapped) == sorted(model.state_dict())


def test_a_file_with_the_distilbert_prefix_loads_the_same_weights(reference_folder, tmp_path):
    """DistilBertFor... models save the backbone under distilbert.; the prefix is stripped."""
    _, folder = reference_folder
    prefixed = {f"distilbert.{name}": t for name, t in load_file(folder / "model.safetensors").items()}
    torch.save(prefixed, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    plain, loaded = (from_pretrained(f).state_dict() for f in (folder, tmp_path))
    assert all(torch.equal(plain[name], loaded[name]) for name in plain)


def test_a_distilbert_folder_is_refused_as_bert_for_pretraining(reference_folder):
    with pytest.raises(CheckpointError, match="model_type 'distilbert', expected 'bert'.*model_class=Bert"):
        from_pretrained(reference_folder[1], BertForPreTraining)


def test_a_bert_with_a_pooler_but_no_token_types_has_no_hugging_face_form(tmp_path):
    """Without token types it is DistilBERT-shaped only without the pooler too (a Bert with token types and
    no pooler is ELECTRA-shaped: tests/test_hf_successors.py)."""
    model = Bert(BertConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=8, type_vocab_size=0))
    with pytest.raises(ConfigError, match="always have token-type embeddings.*or pooler=False too for a DistilBERT"):
        save_pretrained(model, tmp_path)


def test_token_types_given_to_a_bert_without_segments_are_refused():
    model = Bert(BertConfig(**DISTIL_SHAPE))
    ids = torch.ones(1, 6, dtype=torch.long)
    types = torch.zeros_like(ids)
    types[0, 3:] = 1
    with pytest.raises(ValueError, match="no token-type embeddings"):
        model(ids, token_type_ids=types)


def test_all_zero_token_types_give_the_hidden_states_of_none():
    model = Bert(BertConfig(**DISTIL_SHAPE)).eval()
    ids = torch.ones(1, 6, dtype=torch.long)
    assert torch.equal(model(ids)[0], model(ids, token_type_ids=torch.zeros_like(ids))[0])


def test_bert_for_pretraining_needs_the_pooler():
    with pytest.raises(ValueError, match="pooler=True"):
        BertForPreTraining(BertConfig(**DISTIL_SHAPE))


def test_the_parity_command_passes_on_a_distilbert_folder(reference_folder, capsys):
    from minilm.parity import main
    assert main([str(reference_folder[1])]) == 0
    assert "last hidden state" in capsys.readouterr().out
