"""The Llama model (minilm/model/llama.py, rope.py): each of its four parts, its KV cache with grouped-query
attention, the fused path against the written-out one, and decoding with left padding and end tokens.
Parity with transformers' LlamaForCausalLM is tests/test_hf_llama.py."""

import pytest
import torch

from minilm.model import KVCache, Llama, LlamaConfig
from minilm.model.llama import RMSNorm, SwiGLU
from minilm.model.rope import RotaryEmbedding, apply_rotary, rotate_half

VOCAB = 50


def tiny_llama(**overrides) -> Llama:
    torch.manual_seed(0)
    settings = dict(vocab_size=VOCAB, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, n_inner=48)
    return Llama(LlamaConfig(**{**settings, **overrides})).eval()


def random_ids(B, T, seed=1):
    return torch.randint(0, VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))


# RoPE


def test_rotate_half_turns_each_pair_a_quarter_turn():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])  # pairs (1, 3) and (2, 4)
    assert rotate_half(x).tolist() == [-3.0, -4.0, 1.0, 2.0]


def test_rotary_keeps_the_length_of_every_pair():
    head_dim = 8
    cos, sin = RotaryEmbedding(head_dim, 10000.0)(torch.arange(5)[None], torch.float32)
    x = torch.randn(1, 1, 5, head_dim)
    turned = apply_rotary(x, cos, sin)
    pair_length = lambda t: t[..., :4] ** 2 + t[..., 4:] ** 2  # dimension i with i + head_dim/2
    torch.testing.assert_close(pair_length(turned), pair_length(x))


@pytest.mark.parametrize("theta", [1e4, 5e5])
def test_rotated_scores_depend_only_on_the_distance_between_positions(theta):
    head_dim = 16
    rope = RotaryEmbedding(head_dim, theta)
    q, k = torch.randn(head_dim, dtype=torch.float64), torch.randn(head_dim, dtype=torch.float64)
    rope.inv_freq = rope.inv_freq.double()

    def score(m, n):
        cos, sin = rope(torch.tensor([[m, n]]), torch.float64)
        q_m = apply_rotary(q.view(1, 1, 1, -1), cos[:, :1], sin[:, :1])
        k_n = apply_rotary(k.view(1, 1, 1, -1), cos[:, 1:], sin[:, 1:])
        return (q_m * k_n).sum().item()

    for distance in (0, 1, 7):
        scores = [score(m + distance, m) for m in (0, 3, 20, 100)]
        assert max(scores) - min(scores) < 1e-9, scores
    assert abs(score(5, 0) - score(0, 5)) > 1e-6  # but the direction matters


def test_the_first_pair_turns_one_radian_per_position_and_the_last_slowest():
    cos, sin = RotaryEmbedding(8, 10000.0)(torch.tensor([[1]]), torch.float32)
    angles = torch.atan2(sin[0, 0, :4], cos[0, 0, :4])
    assert angles[0].item() == pytest.approx(1.0)
    assert angles[3].item() == pytest.approx(10000.0 ** (-6 / 8))


# RMSNorm, SwiGLU


def test_rmsnorm_gives_unit_root_mean_square_before_its_scale():
    x = torch.randn(3, 5, 16) * 7 + 2
    y = RMSNorm(16, eps=1e-6)(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(3, 5), rtol=0, atol=1e-4)


def test_rmsnorm_computes_in_float32_for_bfloat16_inputs():
    x = (torch.randn(2, 64) * 100).bfloat16()
    norm = RMSNorm(64, eps=1e-5)
    x32 = x.float()
    expected = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5)).bfloat16()  # cast back at the end
    assert torch.equal(norm(x), norm.weight * expected)


def test_swiglu_is_down_of_silu_gate_times_up():
    mlp = SwiGLU(LlamaConfig(n_embd=8, n_head=2, n_inner=12))
    x = torch.randn(2, 3, 8)
    gate, up = x @ mlp.gate_proj.weight.T, x @ mlp.up_proj.weight.T
    expected = (gate * torch.sigmoid(gate) * up) @ mlp.down_proj.weight.T
    torch.testing.assert_close(mlp(x), expected)


def test_swiglu_width_defaults_to_eight_thirds_of_the_model_width():
    assert LlamaConfig(n_embd=48, n_head=4).mlp_width == 128


# Grouped-query attention


def test_grouped_query_attention_has_n_kv_head_key_and_value_heads():
    attn = tiny_llama().blocks[0].attn
    assert attn.q_proj.weight.shape == (32, 32) and attn.k_proj.weight.shape == (16, 32)  # 2 of 4 heads' width
    assert attn.v_proj.weight.shape == (16, 32)


def test_the_kv_cache_stores_only_the_key_value_heads():
    model = tiny_llama()
    cache = KVCache(model.config.n_layer)
    model(random_ids(2, 7), kv_cache=cache)
    assert cache.layers[0].keys.shape == (2, 2, 7, 8)  # (B, n_kv_head, T, head_dim), not n_head = 4


def test_query_heads_in_one_group_read_the_same_key_value_head():
    attn = tiny_llama().blocks[0].attn
    shared = attn._share(torch.arange(2.0).view(1, 2, 1, 1))  # key/value heads 0 and 1
    assert shared.flatten().tolist() == [0.0, 0.0, 1.0, 1.0]  # query heads 0, 1 -> 0; 2, 3 -> 1


def test_gqa_with_as_many_kv_heads_as_query_heads_is_plain_multi_head_attention():
    model = tiny_llama(n_kv_head=4)
    assert model.blocks[0].attn.k_proj.weight.shape == (32, 32)
    assert tiny_llama(n_kv_head=None).config.kv_heads == 4


@pytest.mark.parametrize("n_kv_head, message", [(3, "multiple of n_kv_head"), (0, "positive integer")])
def test_a_kv_head_count_that_does_not_divide_the_heads_is_refused(n_kv_head, message):
    with pytest.raises(ValueError, match=message):
        LlamaConfig(n_embd=32, n_head=4, n_kv_head=n_kv_head)


# The whole model


def test_no_position_table_and_no_biases():
    names = [name for name, _ in tiny_llama().named_parameters()]
    assert not any("wpe" in name or name.endswith("bias") for name in names)


def test_tied_embeddings_share_one_matrix_only_when_asked():
    tied = tiny_llama(tie_word_embeddings=True)
    assert tied.lm_head.weight is tied.wte.weight
    untied = tiny_llama(tie_word_embeddings=False)
    assert untied.lm_head.weight is not untied.wte.weight


def test_logits_do_not_depend_on_later_tokens():
    model, ids = tiny_llama(), random_ids(1, 10)
    changed = ids.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % VOCAB
    torch.testing.assert_close(model(ids)[0][:, :6], model(changed)[0][:, :6])


@pytest.mark.parametrize("attn_impl", ["manual", "sdpa"])
def test_kv_cache_decoding_matches_the_full_forward_at_every_step(attn_impl):
    model, ids = tiny_llama(attn_impl=attn_impl), random_ids(2, 12)
    full, _ = model(ids)
    cache = KVCache(model.config.n_layer)
    prefill, _ = model(ids[:, :5], kv_cache=cache)
    torch.testing.assert_close(prefill, full[:, :5], rtol=0, atol=1e-5)
    for t in range(5, 12):
        step, _ = model(ids[:, t:t + 1], kv_cache=cache)
        torch.testing.assert_close(step[:, 0], full[:, t], rtol=0, atol=1e-5)


def test_fused_attention_matches_the_written_out_one_with_gqa_and_the_cache():
    manual, fused = tiny_llama(attn_impl="manual"), tiny_llama(attn_impl="sdpa")
    ids = random_ids(2, 12)
    manual_cache, fused_cache = KVCache(2), KVCache(2)
    for start, end in [(0, 5), (5, 6), (6, 9), (9, 12)]:
        expected, _ = manual(ids[:, start:end], kv_cache=manual_cache)
        actual, _ = fused(ids[:, start:end], kv_cache=fused_cache)
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


def test_last_only_gives_the_last_positions_logits_with_the_cache():
    model, ids = tiny_llama(), random_ids(2, 9)
    full, _ = model(ids)
    cache = KVCache(model.config.n_layer)
    last, _ = model(ids, kv_cache=cache, last_only=True)
    assert last.shape == (2, 1, VOCAB) and cache.next_position == 9  # every position still goes into the cache
    torch.testing.assert_close(last, full[:, -1:], rtol=0, atol=1e-6)


def test_a_left_padded_row_gives_the_logits_it_gives_alone():
    model, T = tiny_llama(), 9
    ids = random_ids(2, T)
    mask = torch.tensor([[0, 0, 0] + [1] * (T - 3), [1] * T])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    padded, _ = model(ids, attention_mask=mask, position_ids=positions)
    alone, _ = model(ids[:1, 3:])
    torch.testing.assert_close(padded[0, 3:], alone[0], rtol=0, atol=1e-5)


def test_attention_maps_are_causal_distributions_for_every_layer():
    maps = tiny_llama().attention_maps(random_ids(1, 6))
    assert len(maps) == 2 and maps[0].shape == (1, 4, 6, 6)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(1, 4, 6))
    assert torch.all(maps[0].triu(diagonal=1) == 0)


# Decoding


def test_greedy_tokens_are_the_same_with_and_without_the_cache():
    model, prompt = tiny_llama(), random_ids(2, 4)
    cached = model.generate(prompt, 12, temperature=0)
    assert torch.equal(cached, model.generate(prompt, 12, temperature=0, use_cache=False))


def test_decoding_from_a_cache_of_the_prompts_first_tokens_gives_the_same_tokens():
    model, prompt = tiny_llama(), random_ids(1, 10)
    cache = KVCache(model.config.n_layer)
    model(prompt[:, :9], kv_cache=cache)  # a chat's earlier turns, already read
    model(prompt[:, 9:], kv_cache=cache)
    cache.crop(6)  # the conversation changed after its sixth token
    continued = torch.cat(list(model.generate_tokens(prompt, 8, temperature=0, kv_cache=cache)), dim=1)
    assert torch.equal(continued, model.generate(prompt, 8, temperature=0)[:, 10:])
    assert cache.next_position == 10 + 8 - 1  # the prompt and every new token but the last


def test_a_left_padded_batch_decodes_each_prompt_as_it_would_alone():
    model = tiny_llama()
    short, long = random_ids(1, 3, seed=2), random_ids(1, 6, seed=3)
    batch = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), short], 1), long])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [1] * 6])
    together = model.generate(batch, 8, temperature=0, attention_mask=mask)[:, 6:]
    assert torch.equal(together[0], model.generate(short, 8, temperature=0)[0, 3:])
    assert torch.equal(together[1], model.generate(long, 8, temperature=0)[0, 6:])


def test_each_row_stops_at_its_end_token_and_decoding_ends_when_all_have():
    model, prompt = tiny_llama(), random_ids(2, 4)
    free = model.generate(prompt, 10, temperature=0)[:, 4:]
    end = free[0, 2].item()  # row 0 reaches this token at its third step
    stopped = model.generate(prompt, 10, temperature=0, eos_token_ids=[end])[:, 4:]
    row0 = stopped[0].tolist()
    assert row0[:3] == free[0, :3].tolist() and set(row0[3:]) <= {end}
    if end in free[1].tolist():  # row 1 ends too: decoding stops as soon as both have
        assert stopped.size(1) == max(free[0].tolist().index(end), free[1].tolist().index(end)) + 1
    else:
        assert stopped.size(1) == 10 and torch.equal(stopped[1], free[1])


def test_a_context_longer_than_block_size_is_cropped_and_decoding_goes_on():
    model = tiny_llama(block_size=8)
    out = model.generate(random_ids(1, 6), 10, temperature=0)
    assert out.shape == (1, 16)
    torch.testing.assert_close(out, model.generate(random_ids(1, 6), 10, temperature=0, use_cache=False))


def test_parameter_count_of_the_small_preset_is_within_five_percent_of_gpt_small():
    from minilm.model import GPT, GPTConfig
    gpt = GPT(GPTConfig.preset("small")).num_parameters()
    llama = Llama(LlamaConfig.preset("small")).num_parameters()
    assert abs(llama - gpt) / gpt < 0.05, (llama, gpt)
