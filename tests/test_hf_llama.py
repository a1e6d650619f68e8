"""Llama folders from Hugging Face: minilm's Llama matches transformers' LlamaForCausalLM on the same weights.

The reference models are tiny random LlamaForCausalLM (transformers builds and saves them here; no Llama
weights in Hugging Face's format ship on PyPI), every weight moved off its initial value so that a tensor read
into the wrong place shows: logits, padded batches, greedy decoding with and without the KV cache, end tokens,
both directions of the name table, the fused attention against the written-out one, and the parity command's
layer-by-layer report.
"""

import copy
import json
import warnings
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file

from common.errors import CheckpointError, ConfigError
from minilm import Llama, LlamaConfig, from_pretrained, save_pretrained
from minilm.hf.names import mappings_for
from minilm.model import KVCache
from minilm.parity import main as parity_main
from minilm.parity_layers import first_divergence, layer_diffs

import transformers
pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5
VOCAB = 61
HF_TINY = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
               max_position_embeddings=128, initializer_range=0.2, bos_token_id=None, eos_token_id=None)
SHAPES = {  # n_kv_head, tied head, rotary base
    "gqa-untied-1e4": dict(num_key_value_heads=2, tie_word_embeddings=False, rope_theta=1e4),
    "gqa-tied-5e5": dict(num_key_value_heads=2, tie_word_embeddings=True, rope_theta=5e5),
    "plain-tied-1e4": dict(num_key_value_heads=4, tie_word_embeddings=True, rope_theta=1e4),
    "plain-untied-5e5": dict(num_key_value_heads=4, tie_word_embeddings=False, rope_theta=5e5),
}


def hf_llama(seed=0, rope_theta=1e4, **settings):
    """A seeded random LlamaForCausalLM with every weight moved (fresh norms are all ones)."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(**{**HF_TINY, **settings},
                                      rope_parameters={"rope_type": "default", "rope_theta": rope_theta})
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model.eval()


def hf_eager(folder):
    return transformers.LlamaForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Each shape of SHAPES as (transformers model, its saved folder); built once, on first use."""
    made = {}

    def folder(shape):
        if shape not in made:
            path = tmp_path_factory.mktemp(shape)
            hf_llama(**SHAPES[shape]).save_pretrained(path)
            made[shape] = (hf_eager(path), path)
        return made[shape]
    return folder


@pytest.fixture(scope="module")
def gqa(folders):
    hf_model, folder = folders("gqa-untied-1e4")
    return hf_model, from_pretrained(folder)


def random_ids(batch, length, seed=1):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def left_padded(batch=3, length=12, pads=(0, 4, 7)):
    """Random ids whose rows begin with pads[b] padding positions (mask 0), and each row's positions
    counted from its first real token, as transformers' generate counts them."""
    ids, mask = random_ids(batch, length), torch.ones(batch, length, dtype=torch.long)
    for row, pad in enumerate(pads):
        mask[row, :pad] = 0
    return ids, mask, (mask.cumsum(dim=1) - 1).clamp(min=0)


def max_diff(a, b):
    return (a - b).abs().max().item()


def greedy(hf_model, ids, n, attention_mask=None, eos=None):
    """transformers' greedy decoding; a finished row is filled with its end token, as minilm fills it."""
    mask = torch.ones_like(ids) if attention_mask is None else attention_mask
    return hf_model.generate(ids, attention_mask=mask, max_new_tokens=n, do_sample=False, eos_token_id=eos,
                             pad_token_id=0 if eos is None else eos)


# Logits

@pytest.mark.parametrize("shape", SHAPES)
@torch.no_grad()
def test_logits_match_transformers(folders, shape):
    hf_model, folder = folders(shape)
    ids = random_ids(2, 20)
    assert max_diff(from_pretrained(folder)(ids)[0], hf_model(ids).logits) <= TOL


def test_from_pretrained_reads_the_shape_from_config_json(folders):
    _, folder = folders("gqa-tied-5e5")
    config = from_pretrained(folder).config
    assert (type(config), config.n_kv_head, config.tie_word_embeddings, config.rope_theta) == \
        (LlamaConfig, 2, True, 5e5)


def test_a_tied_head_is_the_token_embedding(folders):
    _, folder = folders("gqa-tied-5e5")
    model = from_pretrained(folder)
    assert model.lm_head.weight is model.wte.weight


@pytest.mark.parametrize("shape", ["gqa-untied-1e4", "plain-tied-1e4"])
@torch.no_grad()
def test_left_padded_batch_with_position_ids_matches_on_real_tokens(folders, shape):
    hf_model, folder = folders(shape)
    ids, mask, positions = left_padded()
    ours = from_pretrained(folder)(ids, attention_mask=mask, position_ids=positions)[0]
    theirs = hf_model(ids, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()
    assert max_diff(ours[real], theirs[real]) <= TOL


# Generation

@pytest.mark.parametrize("use_cache", [True, False], ids=["kv_cache", "no_cache"])
def test_greedy_tokens_match_transformers_generate(gqa, use_cache):
    hf_model, model = gqa
    prompt = random_ids(2, 6)
    expected = greedy(hf_model, prompt, 30)
    assert len(set(expected[0, 6:].tolist())) > 3  # decoding wanders: a stuck model would prove little
    assert torch.equal(model.generate(prompt, 30, temperature=0, use_cache=use_cache), expected)


@pytest.mark.parametrize("use_cache", [True, False], ids=["kv_cache", "no_cache"])
def test_left_padded_batch_generation_matches_transformers(gqa, use_cache):
    hf_model, model = gqa
    ids, mask, _ = left_padded(length=8, pads=(0, 3, 5))
    got = model.generate(ids, 20, temperature=0, attention_mask=mask, use_cache=use_cache)
    assert torch.equal(got, greedy(hf_model, ids, 20, attention_mask=mask))


def test_left_padded_batch_generation_equals_each_prompt_alone(gqa):
    _, model = gqa
    ids, mask, _ = left_padded(length=8, pads=(0, 3, 5))
    batched = model.generate(ids, 20, temperature=0, attention_mask=mask)
    for row, pad in enumerate((0, 3, 5)):
        alone = model.generate(ids[row:row + 1, pad:], 20, temperature=0)
        assert torch.equal(batched[row, pad:], alone[0])


def first_new_token_seen_again(tokens, start):
    """The token greedy decoding produced at step 4 of tokens[start:] (to use as an end token), and the step
    where it first appears."""
    new = tokens[start:].tolist()
    eos = new[4]
    return eos, new.index(eos)


def test_generation_stops_at_the_end_token_for_one_prompt(gqa):
    hf_model, model = gqa
    prompt = random_ids(1, 6)
    eos, step = first_new_token_seen_again(model.generate(prompt, 30, temperature=0)[0], 6)
    got = model.generate(prompt, 30, temperature=0, eos_token_ids=[eos])
    assert got.shape == (1, 6 + step + 1) and got[0, -1] == eos
    assert torch.equal(got, greedy(hf_model, prompt, 30, eos=eos))


def test_generation_stops_per_row_at_the_end_token_in_a_batch(gqa):
    hf_model, model = gqa
    ids, mask, _ = left_padded(length=8, pads=(0, 3, 5))
    free = model.generate(ids, 30, temperature=0, attention_mask=mask)
    eos, step = first_new_token_seen_again(free[0], 8)
    got = model.generate(ids, 30, temperature=0, attention_mask=mask, eos_token_ids=[eos])
    row0_end = 8 + step
    assert (got[0, row0_end:] == eos).all()  # row 0 has finished: only its end token from there
    assert (got[1:, row0_end + 1:] != eos).any()  # the other rows went on decoding
    assert torch.equal(got, greedy(hf_model, ids, 30, attention_mask=mask, eos=eos))


# Both directions of the name table

def minilm_llama(tied: bool, seed=3) -> Llama:
    """minilm's own init, never seen by transformers, norms moved off 1."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, block_size=64, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, n_inner=48,
                         rope_theta=5e5, layer_norm_eps=1e-5, tie_word_embeddings=tied)
    model = Llama(config)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model.eval()


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@torch.no_grad()
def test_saved_model_loads_in_transformers_with_the_same_logits(tmp_path, tied):
    model = minilm_llama(tied)
    save_pretrained(model, tmp_path)
    hf_model = hf_eager(tmp_path)
    ids, mask, positions = left_padded()
    real = mask.bool()
    ours = model(ids, attention_mask=mask, position_ids=positions)[0]
    assert max_diff(ours[real], hf_model(ids, attention_mask=mask, position_ids=positions).logits[real]) <= TOL
    assert hf_model.config.tie_word_embeddings is tied


@pytest.mark.parametrize("shape", ["gqa-untied-1e4", "gqa-tied-5e5"])
def test_import_then_export_gives_the_same_tensors(folders, tmp_path, shape):
    _, folder = folders(shape)
    save_pretrained(from_pretrained(folder), tmp_path)
    original, exported = load_file(folder / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert original.keys() == exported.keys()
    assert all(torch.equal(original[name], exported[name]) for name in original)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_table_maps_every_parameter_exactly_once(tied):
    model = minilm_llama(tied)
    mapped = [name for m in mappings_for(model) for name in m.minilm]
    assert sorted(mapped) == sorted(model.state_dict())


def test_older_files_with_rotary_buffers_and_top_level_rope_theta_load(folders, tmp_path):
    """Llama files of transformers 4.3x store each layer's inv_freq and say rope_theta at the top level."""
    hf_model, folder = folders("gqa-tied-5e5")
    config = json.loads((folder / "config.json").read_text())
    config["rope_theta"] = config.pop("rope_parameters")["rope_theta"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    tensors = load_file(folder / "model.safetensors")
    for i in range(2):
        tensors[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = torch.ones(4)
    save_file(tensors, tmp_path / "model.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an "unused tensor" warning would fail the test
        model = from_pretrained(tmp_path)
    ids = random_ids(1, 10)
    with torch.no_grad():
        assert max_diff(model(ids)[0], hf_model(ids).logits) <= TOL


# What minilm's Llama does not compute is refused by name

@pytest.mark.parametrize("setting, words", [
    (dict(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}), "rope scaling 'linear'"),
    (dict(rope_scaling={"type": "dynamic", "factor": 2.0}), "rope scaling 'dynamic'"),
    (dict(attention_bias=True), "attention_bias=true"),
    (dict(mlp_bias=True), "mlp_bias=true"),
    (dict(head_dim=16), "head_dim=16"),
    (dict(hidden_act="gelu"), "hidden_act='gelu'"),
])
def test_features_minilm_lacks_are_refused_by_name(folders, tmp_path, setting, words):
    _, folder = folders("gqa-tied-5e5")
    config = {**json.loads((folder / "config.json").read_text()), **setting}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=words):
        from_pretrained(tmp_path)


def test_saving_a_llama_with_biases_is_refused():
    model = Llama(replace(minilm_llama(True).config, bias=True))
    with pytest.raises(ConfigError, match="bias=True.*build it with bias=False"):
        mappings_for(model)


# The fused attention against the written-out one, with grouped-query heads

def fused_twin(model: Llama) -> Llama:
    twin = Llama(replace(model.config, attn_impl="sdpa")).eval()
    twin.load_state_dict(model.state_dict())
    return twin


@torch.no_grad()
def test_sdpa_equals_manual_on_a_left_padded_batch_with_gqa(gqa):
    _, model = gqa
    ids, mask, positions = left_padded()
    real = mask.bool()
    manual = model(ids, attention_mask=mask, position_ids=positions)[0]
    fused = fused_twin(model)(ids, attention_mask=mask, position_ids=positions)[0]
    assert max_diff(manual[real], fused[real]) <= TOL


@torch.no_grad()
def test_sdpa_equals_manual_through_the_kv_cache_with_gqa(gqa):
    _, model = gqa
    fused = fused_twin(model)
    ids = random_ids(2, 12)
    caches = KVCache(model.config.n_layer), KVCache(model.config.n_layer)
    steps = [ids[:, :6]] + [ids[:, t:t + 1] for t in range(6, 12)]  # a prefill, then one token at a time
    for step in steps:
        manual, fast = model(step, kv_cache=caches[0])[0], fused(step, kv_cache=caches[1])[0]
        assert max_diff(manual, fast) <= TOL
    assert caches[1].layers[0].keys.shape == (2, 2, 12, 8)  # the cache keeps n_kv_head = 2 heads


# The parity command

def test_parity_passes_on_a_llama_folder(folders, capsys):
    _, folder = folders("gqa-tied-5e5")
    assert parity_main([str(folder), "--tokens", "20"]) == 0
    report = capsys.readouterr().out
    assert "left-padded batch, KV cache" in report and "DIFFER" not in report


def perturb_block(model, block: int):
    with torch.no_grad():
        weight = model.blocks[block].mlp.down_proj.weight
        weight.add_(torch.randn_like(weight) * 0.01)
    return model


@torch.no_grad()
def test_layer_report_names_the_perturbed_block_first(gqa):
    hf_model, model = gqa
    ids = random_ids(2, 10)
    twin = perturb_block(copy.deepcopy(model), 1)
    rows = layer_diffs(twin, hf_model, lambda: twin(ids), lambda: hf_model(ids))
    assert [row.layer for row in rows] == ["embedding", "block 0", "block 1", "final norm", "logits"]
    assert first_divergence(rows, TOL).layer == "block 1"


def test_parity_command_names_the_first_diverging_layer(folders, monkeypatch, capsys):
    _, folder = folders("plain-untied-5e5")
    import minilm.parity as parity
    loader = parity.from_pretrained
    monkeypatch.setattr(parity, "from_pretrained", lambda path, cls: perturb_block(loader(path, cls), 1))
    assert parity_main([str(folder), "--tokens", "5"]) == 1
    report = capsys.readouterr().out
    assert "first layer that diverges: block 1" in report
