"""Prefix-tuning: learned keys/values before the tokens, masked correctly and taking no positions."""

import pytest
import torch

from minilm.peft import PeftConfig, apply_peft, precompute_prefix
from peft_tiny import HEAD, KINDS, random_ids, tiny_model

ATOL = 1e-5
PAD = 0


def prefix_model(kind, attn_impl=None):
    model = tiny_model(kind)
    if attn_impl is not None:
        for block in model.backbone.blocks:
            block.attn.attn_impl = attn_impl
    apply_peft(model, PeftConfig(method="prefix", prefix_length=3, prefix_hidden=8), HEAD)
    return model


def test_bert_prefix_with_right_padding_equals_each_sequence_alone():
    model = prefix_model("bert")
    lengths, T = [6, 3], 8
    ids = random_ids(2, T)
    mask = (torch.arange(T)[None] < torch.tensor(lengths)[:, None]).long()  # (2, T)
    padded = model(ids.masked_fill(mask == 0, PAD), attention_mask=mask)
    for row, n in enumerate(lengths):
        alone = model(ids[row:row + 1, :n])
        torch.testing.assert_close(padded[row:row + 1, :n], alone, rtol=0, atol=ATOL)


def test_gpt_prefix_with_left_padding_equals_each_sequence_alone():
    model = prefix_model("gpt")
    lengths, T = [6, 3], 8
    ids = random_ids(2, T)
    n_pad = torch.tensor([T - n for n in lengths])[:, None]  # (2, 1)
    mask = (torch.arange(T)[None] >= n_pad).long()  # left padding: zeros first
    position_ids = (torch.arange(T)[None] - n_pad).clamp(min=0)  # the first real token has position 0
    logits, _ = model.backbone(ids.masked_fill(mask == 0, PAD), attention_mask=mask, position_ids=position_ids)
    for row, n in enumerate(lengths):
        alone, _ = model.backbone(ids[row:row + 1, T - n:])
        torch.testing.assert_close(logits[row:row + 1, T - n:], alone, rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_the_prefix_changes_the_output(kind):
    base, model = tiny_model(kind), prefix_model(kind)
    ids = random_ids()
    assert not torch.allclose(model(ids), base(ids), atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_the_prefix_takes_no_positions_so_a_full_block_still_fits(kind):
    model = prefix_model(kind)
    block_size = model.backbone.config.block_size
    assert model(random_ids(1, block_size)).shape[:2] == (1, block_size)


@pytest.mark.parametrize("kind", KINDS)
def test_precomputed_prefix_equals_the_mlp_prefix(kind):
    model = prefix_model(kind)
    ids = random_ids()
    with torch.no_grad():
        before = model(ids)
        precompute_prefix(model)
        after = model(ids)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    assert model.backbone.prefix_encoder.mlp is None and model.backbone.prefix_encoder.embedding is None


@pytest.mark.parametrize("kind", KINDS)
def test_prefix_manual_and_sdpa_attention_agree_with_padding(kind):
    manual, sdpa = prefix_model(kind, "manual"), prefix_model(kind, "sdpa")
    ids = random_ids(2, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    torch.testing.assert_close(sdpa(ids, attention_mask=mask), manual(ids, attention_mask=mask), rtol=0, atol=ATOL)


def test_gpt_generation_with_a_prefix_is_the_same_with_and_without_the_kv_cache():
    model = prefix_model("gpt")
    prompt = random_ids(1, 4)
    cached = model.backbone.generate(prompt, max_new_tokens=14, temperature=0.0, use_cache=True)
    uncached = model.backbone.generate(prompt, max_new_tokens=14, temperature=0.0, use_cache=False)
    assert torch.equal(cached, uncached)  # 18 tokens > block_size 16: the cache is rebuilt on the way


def test_the_prefix_gets_gradients_and_the_base_model_does_not():
    model = prefix_model("bert")
    model(random_ids()).pow(2).mean().backward()
    assert model.backbone.prefix_encoder.embedding.weight.grad.abs().sum() > 0
    assert model.backbone.blocks[0].attn.q_proj.weight.grad is None


def test_prefix_without_a_backbone_is_an_error():
    with pytest.raises(ValueError, match="GPT or Bert"):
        apply_peft(torch.nn.Sequential(torch.nn.Linear(2, 2)), PeftConfig(method="prefix"), ["0"])

