"""GPT-2 weights from Hugging Face: minilm's GPT matches transformers' GPT2LMHeadModel.

The reference checkpoints are random-init models that transformers itself saves, in both layouts:
transformers 5 (`transformer.` prefix, no lm_head, model.safetensors) and the original OpenAI/HF
gpt2 files (no prefix, attn.bias / attn.masked_bias buffers, pytorch_model.bin).
"""

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

import transformers

from minilm import GPT, GPTConfig, from_pretrained, save_pretrained  # noqa: E402

TOL = 1e-5
TINY = dict(vocab_size=97, n_positions=64, n_embd=32, n_layer=2, n_head=4)


def make_hf_gpt2(folder, initializer_range=0.02, seed=0, **shape):
    """A seeded random-init GPT2LMHeadModel, saved by transformers into folder."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(**shape, initializer_range=initializer_range, bos_token_id=None,
                                     eos_token_id=None, attn_implementation="eager")
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(folder)
    return model


def write_legacy_layout(src, dst):
    """Rewrite a transformers-5 folder as the original gpt2 files: no prefix, causal-mask buffers, .bin."""
    dst.mkdir()
    config = json.loads((src / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps(config))
    state = {k.removeprefix("transformer."): v for k, v in load_file(src / "model.safetensors").items()}
    n = config["n_positions"]
    for i in range(config["n_layer"]):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n, dtype=torch.uint8)).view(1, 1, n, n)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, dst / "pytorch_model.bin")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2_tiny")
    # initializer_range 0.1: sharper logits, so greedy decoding wanders instead of repeating one token.
    hf_model = make_hf_gpt2(folder, initializer_range=0.1, **TINY)
    return hf_model, folder


def random_ids(batch, length, vocab, seed=1):
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def max_diff(a, b):
    return (a - b).abs().max().item()


@torch.no_grad()
def test_tiny_logits_match_transformers(tiny):
    hf_model, folder = tiny
    input_ids = random_ids(3, 20, TINY["vocab_size"])
    logits, _ = from_pretrained(folder, GPT)(input_ids)
    assert max_diff(logits, hf_model(input_ids).logits) <= TOL


@torch.no_grad()
def test_legacy_layout_with_buffers_loads_the_same_weights(tiny, tmp_path):
    _, folder = tiny
    write_legacy_layout(folder, tmp_path / "legacy")
    new, legacy = from_pretrained(folder, GPT).state_dict(), from_pretrained(tmp_path / "legacy", GPT).state_dict()
    assert new.keys() == legacy.keys()
    assert all(torch.equal(new[name], legacy[name]) for name in new)


def test_legacy_buffers_are_skipped_without_a_warning(tiny, tmp_path):
    _, folder = tiny
    write_legacy_layout(folder, tmp_path / "legacy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an "unused tensor" warning would fail the test
        from_pretrained(tmp_path / "legacy", GPT)


@torch.no_grad()
def test_right_padded_batch_with_attention_mask_matches_on_real_tokens(tiny):
    hf_model, folder = tiny
    input_ids = random_ids(3, 16, TINY["vocab_size"])
    mask = torch.ones_like(input_ids)
    mask[1, 10:], mask[2, 5:] = 0, 0  # rows of 16, 10 and 5 real tokens
    logits, _ = from_pretrained(folder, GPT)(input_ids, attention_mask=mask)
    real = mask.bool()
    assert max_diff(logits[real], hf_model(input_ids, attention_mask=mask).logits[real]) <= TOL


@torch.no_grad()
def test_left_padded_batch_with_position_ids_matches_on_real_tokens(tiny):
    hf_model, folder = tiny
    input_ids = random_ids(3, 16, TINY["vocab_size"])
    mask = torch.ones_like(input_ids)
    mask[1, :6], mask[2, :11] = 0, 0
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)  # each row's first real token at position 0
    logits, _ = from_pretrained(folder, GPT)(input_ids, attention_mask=mask, position_ids=positions)
    reference = hf_model(input_ids, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()
    assert max_diff(logits[real], reference[real]) <= TOL


@pytest.mark.parametrize("use_cache", [True, False], ids=["kv_cache", "no_cache"])
@torch.no_grad()
def test_50_greedy_tokens_match_transformers(tiny, use_cache):
    hf_model, folder = tiny
    prompt = random_ids(2, 8, TINY["vocab_size"])
    expected = hf_model.generate(prompt, max_new_tokens=50, do_sample=False)
    got = from_pretrained(folder, GPT).generate(prompt, 50, temperature=0, use_cache=use_cache)
    assert expected.shape == (2, 58)
    assert torch.equal(got, expected)


@torch.no_grad()
def test_saved_model_loads_in_transformers_with_the_same_logits(tmp_path):
    torch.manual_seed(3)
    config = GPTConfig(vocab_size=97, block_size=64, n_layer=2, n_head=4, n_embd=32)
    model = GPT(config).eval()  # minilm's own init, never seen by transformers
    save_pretrained(model, tmp_path)
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    input_ids = random_ids(2, 12, TINY["vocab_size"])
    assert max_diff(model(input_ids)[0], hf_model(input_ids).logits) <= TOL


def test_import_then_export_gives_the_same_tensors(tiny, tmp_path):
    _, folder = tiny
    save_pretrained(from_pretrained(folder, GPT), tmp_path)
    original, exported = load_file(folder / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert original.keys() == exported.keys()
    assert all(torch.equal(original[name], exported[name]) for name in original)


@pytest.fixture(scope="module")
def gpt2_124m(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2_124m")
    hf_model = make_hf_gpt2(folder, n_positions=1024, n_layer=12, n_head=12, n_embd=768, vocab_size=50257)
    return hf_model, from_pretrained(folder, GPT)


@pytest.mark.slow
@torch.no_grad()
def test_124m_logits_match_transformers(gpt2_124m):
    hf_model, model = gpt2_124m
    input_ids = random_ids(2, 32, 50257)
    assert max_diff(model(input_ids)[0], hf_model(input_ids).logits) <= TOL


@pytest.mark.slow
@torch.no_grad()
def test_124m_padded_batch_with_attention_mask_matches_on_real_tokens(gpt2_124m):
    hf_model, model = gpt2_124m
    input_ids = random_ids(2, 32, 50257)
    mask = torch.ones_like(input_ids)
    mask[1, 20:] = 0
    real = mask.bool()
    ours, theirs = model(input_ids, attention_mask=mask)[0], hf_model(input_ids, attention_mask=mask).logits
    assert max_diff(ours[real], theirs[real]) <= TOL


def test_from_pretrained_without_a_class_builds_a_gpt_from_a_gpt2_folder(tiny):
    _, folder = tiny
    assert type(from_pretrained(folder)) is GPT
