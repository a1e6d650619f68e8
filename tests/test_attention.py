"""Attention: the hand-written path equals the fused kernel; masks; attention maps."""

import pytest
import torch

from minilm import GPT, Bert, BertConfig, GPTConfig, KVCache, MultiHeadAttention
from minilm.model import TransformerConfig
from minilm.model.attention import build_allowed_mask

VOCAB = 29
ATOL = 1e-5  # fp32


def twin_models(model_class, config_class, **fields):
    """The same random weights in a `manual` and an `sdpa` model."""
    torch.manual_seed(0)
    config = dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=4, n_embd=32, init_std=0.1,
                  dropout=0.0, attn_dropout=0.0, **fields)
    manual = model_class(config_class(**config, attn_impl="manual")).eval()
    sdpa = model_class(config_class(**config, attn_impl="sdpa")).eval()
    sdpa.load_state_dict(manual.state_dict())
    return manual, sdpa


def random_ids(B, T, seed=1):
    return torch.randint(1, VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))


def test_manual_and_sdpa_agree_causal():
    manual, sdpa = twin_models(GPT, GPTConfig)
    ids = random_ids(3, 16)
    torch.testing.assert_close(sdpa(ids)[0], manual(ids)[0], rtol=0, atol=ATOL)


def test_manual_and_sdpa_agree_bidirectional():
    manual, sdpa = twin_models(Bert, BertConfig)
    ids = random_ids(3, 16)
    torch.testing.assert_close(sdpa(ids)[0], manual(ids)[0], rtol=0, atol=ATOL)


def test_manual_and_sdpa_agree_causal_with_left_padding():
    manual, sdpa = twin_models(GPT, GPTConfig)
    ids, mask = random_ids(3, 10), torch.tensor([[0] * 4 + [1] * 6, [1] * 10, [0] * 9 + [1]])
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    expected, _ = manual(ids, attention_mask=mask, position_ids=position_ids)
    actual, _ = sdpa(ids, attention_mask=mask, position_ids=position_ids)
    torch.testing.assert_close(actual, expected, rtol=0, atol=ATOL)  # padding rows included


def test_manual_and_sdpa_agree_bidirectional_with_right_padding():
    manual, sdpa = twin_models(Bert, BertConfig)
    ids, mask = random_ids(2, 10), torch.tensor([[1] * 7 + [0] * 3, [1] * 10])
    for expected, actual in zip(manual(ids, attention_mask=mask), sdpa(ids, attention_mask=mask)):
        torch.testing.assert_close(actual, expected, rtol=0, atol=ATOL)


def test_manual_and_sdpa_agree_with_kv_cache():
    manual, sdpa = twin_models(GPT, GPTConfig)
    ids = random_ids(2, 12)
    manual_cache, sdpa_cache = KVCache(2), KVCache(2)
    for start, end in [(0, 5), (5, 6), (6, 7), (7, 10), (10, 11), (11, 12)]:  # prefill, single steps, a chunk
        expected, _ = manual(ids[:, start:end], kv_cache=manual_cache)
        actual, _ = sdpa(ids[:, start:end], kv_cache=sdpa_cache)
        torch.testing.assert_close(actual, expected, rtol=0, atol=ATOL)


def test_fully_masked_query_outputs_zeros_in_both_implementations():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 16)
    attention_mask = torch.tensor([[0, 0, 1, 1]])  # left padding: queries 0 and 1 see no key at all
    outputs = []
    for impl in ("manual", "sdpa"):
        attn = MultiHeadAttention(TransformerConfig(n_embd=16, n_head=2, attn_impl=impl), causal=True)
        torch.manual_seed(1)
        attn.load_state_dict({name: torch.randn_like(p) for name, p in attn.state_dict().items()})
        y = attn(x, attention_mask) - attn.out_proj.bias  # zero attention output -> out_proj gives its bias
        outputs.append(y)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(y[0, :2], torch.zeros(2, 16), rtol=0, atol=1e-6)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=ATOL)


def test_causal_mask_with_cached_keys_lets_each_query_see_up_to_its_own_position():
    allowed = build_allowed_mask(n_query=2, n_key=5, causal=True, attention_mask=None, device="cpu")
    expected = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)  # queries at 3 and 4
    assert torch.equal(allowed[0, 0], expected)


def test_attention_mask_shorter_than_the_keys_raises():
    with pytest.raises(ValueError, match="covers 3 positions but there are 5 keys"):
        build_allowed_mask(1, 5, causal=True, attention_mask=torch.ones(1, 3), device="cpu")


def test_gpt_attention_map_rows_sum_to_one():
    manual, _ = twin_models(GPT, GPTConfig)
    for attn_map in manual.attention_maps(random_ids(2, 9)):
        assert attn_map.shape == (2, 4, 9, 9)
        torch.testing.assert_close(attn_map.sum(-1), torch.ones(2, 4, 9))


def test_gpt_attention_maps_are_lower_triangular():
    manual, _ = twin_models(GPT, GPTConfig)
    for attn_map in manual.attention_maps(random_ids(2, 9)):
        assert torch.equal(attn_map, attn_map.tril())
        assert (attn_map.diagonal(dim1=-2, dim2=-1) > 0).all()


def test_gpt_attention_maps_are_the_same_with_sdpa_config():
    manual, sdpa = twin_models(GPT, GPTConfig)  # maps always come from the written-out path
    ids = random_ids(1, 6)
    for expected, actual in zip(manual.attention_maps(ids), sdpa.attention_maps(ids)):
        torch.testing.assert_close(actual, expected)


def test_bert_attention_maps_give_padding_zero_weight_and_rows_sum_to_one():
    manual, _ = twin_models(Bert, BertConfig)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    for attn_map in manual.attention_maps(random_ids(1, 9), attention_mask=mask):
        torch.testing.assert_close(attn_map.sum(-1), torch.ones(1, 4, 9))
        assert (attn_map[..., 6:] == 0).all()
        assert (attn_map[..., :6] > 0).all()  # bidirectional: every real key gets some weight
