"""RoBERTa, ALBERT and ELECTRA through the name table, against randomly initialised transformers models
(no weights of these ship on PyPI): each transformers class read into minilm, and each minilm model
written for transformers, with the same outputs within 1e-5 on a padded batch."""

import json
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from common.errors import CheckpointError, ConfigError, run_command
from minilm.hf import from_pretrained, save_pretrained
from minilm.hf.families import format_architectures
from minilm.hf.names import mappings_for
from minilm.parity import main as parity_main
from minilm.model import (GPT, Bert, BertConfig, BertForMaskedLM, BertForPreTraining, Electra, ElectraConfig,
                          ElectraDiscriminator)

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5
HF_TINY = dict(vocab_size=90, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48,
               max_position_embeddings=40)
MINILM_TINY = dict(vocab_size=90, block_size=40, n_layer=3, n_head=4, n_embd=32, n_inner=48)
HF_CONFIGS = {  # transformers config class, its settings
    "roberta": ("RobertaConfig", dict(type_vocab_size=1, pad_token_id=1)),
    "albert": ("AlbertConfig", dict(embedding_size=16)),  # hidden_act gelu_new, ALBERT's default
    "electra": ("ElectraConfig", dict(embedding_size=16)),
}
# transformers class -> (its family, the minilm class from_pretrained builds)
CLASSES = {
    "RobertaModel": ("roberta", Bert), "RobertaForMaskedLM": ("roberta", BertForMaskedLM),
    "AlbertModel": ("albert", Bert), "AlbertForPreTraining": ("albert", BertForPreTraining),
    "AlbertForMaskedLM": ("albert", BertForMaskedLM),
    "ElectraModel": ("electra", Bert), "ElectraForPreTraining": ("electra", ElectraDiscriminator),
    "ElectraForMaskedLM": ("electra", BertForMaskedLM),
}


def _transformers():
    """transformers is the reference (requirements-dev.txt); minilm itself never imports it."""
    import transformers
    return transformers


def perturb(model, seed: int):
    """Fresh LayerNorms are the identity and fresh biases zero: move every weight, so that a weight read
    into the wrong place shows in the outputs."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def hf_model(name: str, seed: int = 0, **settings):
    transformers = _transformers()
    family = CLASSES[name][0]
    config_cls, family_settings = HF_CONFIGS[family]
    config = getattr(transformers, config_cls)(**HF_TINY, **{**family_settings, **settings},
                                               attn_implementation="eager")
    torch.manual_seed(seed)
    return perturb(getattr(transformers, name)(config), seed)


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """Each transformers class, randomly initialised and saved; built once, on first use."""
    made = {}

    def folder(name):
        if name not in made:
            made[name] = (hf_model(name), tmp_path_factory.mktemp(name))
            made[name][0].save_pretrained(made[name][1])
        return made[name]
    return folder


def padded_batch(config, pair: bool):
    """Three rows, two right-padded (pad_token_id where the mask is 0), a sentence pair where the model has two
    token types."""
    ids = torch.randint(3, config.vocab_size, (3, 14), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 10:], mask[2, 4:] = 0, 0
    types = torch.zeros_like(ids)
    if pair:
        types[:, 6:] = 1
    return ids.masked_fill(mask == 0, config.pad_token_id), types, mask


def ours_outputs(model, ids, types, mask) -> dict[str, torch.Tensor]:
    """Every output of a minilm model, by name; real tokens only for those per token."""
    real = mask.bool()
    hidden, pooled = (model if isinstance(model, Bert) else model.bert)(ids, types, mask)
    out = {"hidden": hidden[real]}
    if pooled is not None:
        out["pooled"] = pooled
    if isinstance(model, ElectraDiscriminator):
        out["rtd"] = model(ids, types, mask)[real]
    elif isinstance(model, BertForMaskedLM):
        heads = model(ids, types, mask)
        out["mlm"] = heads.mlm_logits[real]
        if heads.nsp_logits is not None:
            out["sentence pair"] = heads.nsp_logits
    return out


def theirs_outputs(model, ids, types, mask) -> dict[str, torch.Tensor]:
    """The same outputs of the transformers model."""
    real, name = mask.bool(), type(model).__name__
    base = model.base_model(input_ids=ids, token_type_ids=types, attention_mask=mask)
    out = {"hidden": base.last_hidden_state[real]}
    if getattr(base, "pooler_output", None) is not None:
        out["pooled"] = base.pooler_output
    if name == "ElectraForPreTraining":
        out["rtd"] = model(input_ids=ids, token_type_ids=types, attention_mask=mask).logits[real]
    elif name.endswith(("ForMaskedLM", "ForPreTraining")):
        heads = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
        out["mlm"] = (heads.prediction_logits if name.endswith("ForPreTraining") else heads.logits)[real]
        if name == "AlbertForPreTraining":
            out["sentence pair"] = heads.sop_logits
    return out


def max_diffs(ours, theirs) -> dict[str, float]:
    assert ours.keys() == theirs.keys()
    return {name: (ours[name] - theirs[name]).abs().max().item() for name in ours}


@torch.no_grad()
@pytest.mark.parametrize("name", CLASSES)
def test_a_transformers_model_read_into_minilm_gives_its_outputs(hf_folders, name):
    reference, folder = hf_folders(name)
    model = from_pretrained(folder)
    assert type(model) is CLASSES[name][1]
    inputs = padded_batch(model.config, pair=model.config.type_vocab_size > 1)
    diffs = max_diffs(ours_outputs(model, *inputs), theirs_outputs(reference, *inputs))
    print(f"\n{name} read into minilm: max|Δ| {max(diffs.values()):.1e} over {', '.join(diffs)}")
    assert max(diffs.values()) <= TOL, diffs


def minilm_model(name: str, seed: int = 2):
    """A random minilm model of the shape each transformers class has."""
    roberta = BertConfig(**MINILM_TINY, positions_after_padding=True, pad_token_id=1, type_vocab_size=1)
    albert = BertConfig(**MINILM_TINY, embedding_size=16, share_layers=True, gelu_approximate="tanh")
    electra = ElectraConfig(**MINILM_TINY, embedding_size=16, generator_n_embd=16, generator_n_head=2)
    torch.manual_seed(seed)
    build = {
        "RobertaModel": lambda: Bert(roberta), "RobertaForMaskedLM": lambda: BertForMaskedLM(replace(roberta, pooler=False)),
        "AlbertModel": lambda: Bert(albert), "AlbertForPreTraining": lambda: BertForPreTraining(albert),
        "AlbertForMaskedLM": lambda: BertForMaskedLM(replace(albert, pooler=False)),
        "ElectraModel": lambda: Bert(electra), "ElectraForPreTraining": lambda: ElectraDiscriminator(electra),
        "ElectraForMaskedLM": lambda: Electra(electra).generator,
    }[name]
    return perturb(build(), seed)


@torch.no_grad()
@pytest.mark.parametrize("name", CLASSES)
def test_a_saved_minilm_model_loads_in_transformers_with_the_same_outputs(tmp_path, name):
    transformers = _transformers()
    model = minilm_model(name)
    save_pretrained(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [name]
    auto = transformers.AutoModelForMaskedLM if name.endswith("MaskedLM") else transformers.AutoModel
    reference = (auto if name.endswith(("Model", "MaskedLM")) else getattr(transformers, name)).from_pretrained(
        tmp_path, attn_implementation="eager").eval()
    assert type(reference).__name__ == name
    inputs = padded_batch(model.config, pair=model.config.type_vocab_size > 1)
    diffs = max_diffs(ours_outputs(model, *inputs), theirs_outputs(reference, *inputs))
    print(f"\n{name} written by minilm: max|Δ| {max(diffs.values()):.1e} over {', '.join(diffs)}")
    assert max(diffs.values()) <= TOL, diffs


@pytest.mark.parametrize("name", CLASSES)
def test_import_then_export_gives_the_files_tensors_unchanged(hf_folders, tmp_path, name):
    _, folder = hf_folders(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no tensor of the file may go unused, none may be missing
        model = from_pretrained(folder)
    save_pretrained(model, tmp_path)
    original, exported = load_file(folder / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert exported.keys() == original.keys()
    assert all(torch.equal(original[key], exported[key]) for key in exported)


@pytest.mark.parametrize("name", CLASSES)
def test_table_maps_every_parameter_exactly_once(name):
    model = minilm_model(name)
    mapped = [n for m in mappings_for(model) for n in m.minilm]
    shared_copies = [n for n in model.state_dict() if ".blocks." in f".{n}" and ".blocks.0." not in f".{n}"] \
        if model.config.share_layers else []  # ALBERT: blocks.1, blocks.2 are blocks.0 again
    assert sorted(mapped) == sorted(set(model.state_dict()) - set(shared_copies))


def test_the_albert_file_holds_one_blocks_tensors(tmp_path):
    model = minilm_model("AlbertForPreTraining")
    save_pretrained(model, tmp_path)
    names = load_file(tmp_path / "model.safetensors").keys()
    layer_tensors = [n for n in names if ".albert_layer_groups." in n]
    assert len(layer_tensors) == len(model.bert.blocks[0].state_dict()) == 16
    assert all(".albert_layer_groups.0.albert_layers.0." in n for n in layer_tensors)


def test_an_albert_read_from_transformers_runs_one_block_at_every_layer(hf_folders):
    model = from_pretrained(hf_folders("AlbertModel")[1])
    assert model.config.n_layer == 3 and all(block is model.blocks[0] for block in model.blocks)


def test_roberta_config_keeps_the_padding_id_and_its_positions(tmp_path):
    save_pretrained(minilm_model("RobertaModel"), tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["model_type"], saved["pad_token_id"], saved["type_vocab_size"], saved["max_position_embeddings"]) \
        == ("roberta", 1, 1, 40)
    config = from_pretrained(tmp_path).config
    assert (config.positions_after_padding, config.max_length) == (True, 38)  # rows 0 and 1 are before position 1


@torch.no_grad()
def test_electra_with_embeddings_as_wide_as_the_model_has_no_projection(tmp_path):
    transformers = _transformers()
    model = perturb(ElectraDiscriminator(ElectraConfig(**MINILM_TINY, generator_n_embd=16, generator_n_head=2)), 3)
    save_pretrained(model, tmp_path)
    assert not any("embeddings_project" in n for n in load_file(tmp_path / "model.safetensors"))
    reference = transformers.ElectraForPreTraining.from_pretrained(tmp_path, attn_implementation="eager").eval()
    inputs = padded_batch(model.config, pair=True)
    assert max(max_diffs(ours_outputs(model, *inputs), theirs_outputs(reference, *inputs)).values()) <= TOL
    assert from_pretrained(tmp_path).config.embedding_size is None


def test_electra_with_embedding_size_equal_to_the_width_is_refused(tmp_path):
    model = Bert(ElectraConfig(**MINILM_TINY, embedding_size=32, generator_n_embd=16, generator_n_head=2))
    with pytest.raises(ConfigError, match="embedding_size=32 = n_embd.*build it with embedding_size=None"):
        save_pretrained(model, tmp_path)


def test_the_unused_pooler_of_a_masked_lm_model_is_not_saved(tmp_path):
    """BertForMaskedLM never runs its pooler, and transformers' masked-LM classes have none."""
    model = BertForMaskedLM(BertConfig(**MINILM_TINY, positions_after_padding=True, pad_token_id=1))
    save_pretrained(model, tmp_path)
    assert model.config.pooler and not any("pooler" in n for n in load_file(tmp_path / "model.safetensors"))


@torch.no_grad()
def test_a_bert_masked_lm_round_trips_through_transformers_bert_for_masked_lm(tmp_path):
    """A BERT-shaped BertForMaskedLM keeps the pooler BERT's shape has (unused, so not saved)."""
    transformers = _transformers()
    model = perturb(BertForMaskedLM(BertConfig(**MINILM_TINY)), 4)
    save_pretrained(model, tmp_path)
    reference = transformers.BertForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    inputs = padded_batch(model.config, pair=True)
    ours = {k: v for k, v in ours_outputs(model, *inputs).items() if k != "pooled"}
    assert max(max_diffs(ours, theirs_outputs(reference, *inputs)).values()) <= TOL
    loaded = from_pretrained(tmp_path)
    assert type(loaded) is BertForMaskedLM and torch.equal(loaded(*inputs).mlm_logits, model(*inputs).mlm_logits)


def test_a_bert_with_token_types_and_no_pooler_is_saved_as_electra(tmp_path):
    save_pretrained(Bert(BertConfig(**MINILM_TINY, pooler=False)), tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["ElectraModel"]


def test_a_whole_electra_is_saved_as_its_two_models(tmp_path):
    with pytest.raises(TypeError, match="save model.discriminator .* and model.generator"):
        save_pretrained(Electra(ElectraConfig(**MINILM_TINY, generator_n_embd=16, generator_n_head=2)), tmp_path)


def test_a_roberta_folder_given_to_the_bert_pretraining_loader_names_the_loader_to_use(hf_folders):
    folder = hf_folders("RobertaForMaskedLM")[1]
    with pytest.raises(CheckpointError, match="model_type 'roberta', expected 'bert' or 'albert' for a "
                                              r"BertForPreTraining; .*model_class=BertForMaskedLM\)"):
        from_pretrained(folder, BertForPreTraining)


def test_an_albert_folder_given_to_the_gpt_loader_exits_2_with_the_fix(hf_folders, capsys):
    folder = hf_folders("AlbertForPreTraining")[1]
    assert run_command(lambda argv: from_pretrained(folder, GPT)) == 2
    assert "error: " in capsys.readouterr().err
    with pytest.raises(CheckpointError, match=r"expected 'gpt2' for a GPT; .*model_class=BertForPreTraining\)"):
        from_pretrained(folder, GPT)


def test_albert_layer_groups_are_refused(hf_folders, tmp_path):
    _, folder = hf_folders("AlbertModel")
    config = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_groups": 3}))
    with pytest.raises(CheckpointError, match="num_hidden_groups=3; minilm implements only num_hidden_groups=1 "
                                              r"\(minilm's ALBERT runs one shared block"):
        from_pretrained(tmp_path)


def test_a_roberta_masked_lm_with_tanh_gelu_is_refused(tmp_path):
    model = BertForMaskedLM(BertConfig(**MINILM_TINY, positions_after_padding=True, pad_token_id=1,
                                       gelu_approximate="tanh"))
    with pytest.raises(ConfigError, match="RobertaForMaskedLM's head always uses the exact GELU"):
        save_pretrained(model, tmp_path)


@pytest.mark.parametrize("name", ["RobertaForMaskedLM", "AlbertForPreTraining", "ElectraForPreTraining"])
def test_the_parity_command_passes_on_each_family(hf_folders, capsys, name):
    assert parity_main([str(hf_folders(name)[1])]) == 0
    report = capsys.readouterr().out
    expected = {"RobertaForMaskedLM": "MLM logits", "AlbertForPreTraining": "SOP logits",
                "ElectraForPreTraining": "RTD logits"}[name]
    assert expected in report and "last hidden state" in report


def test_docs_show_which_rows_each_class_reads():
    text = (Path(__file__).resolve().parents[1] / "docs" / "hf_weights.md").read_text()
    start, end = "<!-- architectures:start -->\n", "<!-- architectures:end -->"
    assert text[text.index(start) + len(start): text.index(end)] == format_architectures()


def test_a_config_of_another_shape_than_its_family_is_refused(hf_folders, tmp_path):
    """An ELECTRA config.json without token types would give a DistilBERT-shaped Bert, which minilm writes as
    DistilBERT: refused rather than read under the wrong family's names."""
    _, folder = hf_folders("ElectraModel")
    config = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "type_vocab_size": 0}))
    with pytest.raises(CheckpointError, match="type_vocab_size=0.*writes as distilbert"):
        from_pretrained(tmp_path)
