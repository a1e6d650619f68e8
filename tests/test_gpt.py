"""GPT: shapes, parameter count, causality, padding, KV-cache decoding, generation, initial loss, training."""

import math

import pytest
import torch

from minilm import GPT, GPTConfig, KVCache

VOCAB = 37


def tiny_gpt(seed=0, **overrides) -> GPT:
    torch.manual_seed(seed)
    fields = dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=32, init_std=0.1)
    return GPT(GPTConfig(**{**fields, **overrides})).eval()


def random_ids(B, T, seed=1):
    return torch.randint(VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))


def test_logits_have_shape_batch_time_vocab():
    logits, loss = tiny_gpt()(random_ids(3, 7))
    assert logits.shape == (3, 7, VOCAB) and loss is None


def test_gpt2_preset_has_124439808_parameters():
    with torch.device("meta"):  # the size of the real GPT-2 small, without allocating it
        model = GPT(GPTConfig.preset("gpt2"))
    assert model.num_parameters() == 124_439_808


def test_lm_head_shares_the_token_embedding_matrix():
    model = tiny_gpt()
    assert model.lm_head.weight is model.wte.weight


def test_residual_projections_are_initialised_with_std_scaled_by_depth():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=8, n_layer=8, n_head=2, n_embd=64))
    expected = 0.02 / math.sqrt(2 * 8)
    for block in model.blocks:
        for proj in (block.attn.out_proj, block.mlp.fc_out):  # >= 4096 draws: std within a few %
            assert proj.weight.std().item() == pytest.approx(expected, rel=0.1)
        assert block.attn.q_proj.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_bias_false_removes_every_bias_and_still_learns():
    with_bias, without = tiny_gpt(), tiny_gpt(bias=False)
    bias_names = [name for name, _ in with_bias.named_parameters() if name.endswith(".bias")]
    assert len(bias_names) == 2 * 8 + 1  # per block: 4 attention projections, 2 MLP Linears, 2 LayerNorms; ln_f
    assert not [name for name, _ in without.named_parameters() if name.endswith(".bias")]
    n_bias = sum(p.numel() for name, p in with_bias.named_parameters() if name in bias_names)
    assert without.num_parameters() == with_bias.num_parameters() - n_bias
    without.train()
    optimizer = torch.optim.AdamW(without.parameters(), lr=1e-2)
    ids = random_ids(4, 16)
    losses = []
    for _ in range(30):
        _, loss = without(ids[:, :-1], targets=ids[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_changing_later_tokens_never_changes_earlier_logits():
    model, ids = tiny_gpt(), random_ids(2, 8)
    logits, _ = model(ids)
    for t in range(ids.size(1) - 1):
        changed = ids.clone()
        changed[:, t + 1:] = (changed[:, t + 1:] + 1) % VOCAB
        changed_logits, _ = model(changed)
        torch.testing.assert_close(changed_logits[:, :t + 1], logits[:, :t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(changed_logits[:, t + 1:], logits[:, t + 1:], atol=1e-4)


@pytest.mark.parametrize("attn_impl", ["manual", "sdpa"])
def test_right_padding_leaves_real_token_logits_unchanged(attn_impl):
    model, lengths, T = tiny_gpt(attn_impl=attn_impl), [5, 9, 3], 9
    padded = random_ids(len(lengths), T)
    mask = torch.tensor([[1] * n + [0] * (T - n) for n in lengths])
    padded_logits, _ = model(padded, attention_mask=mask)
    for b, n in enumerate(lengths):
        alone, _ = model(padded[b:b + 1, :n])
        torch.testing.assert_close(padded_logits[b, :n], alone[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("attn_impl", ["manual", "sdpa"])
@pytest.mark.parametrize("lengths", [[5, 9, 3], [4]])  # batch of one too: the mask must not be dropped
def test_left_padding_with_shifted_positions_matches_unpadded(attn_impl, lengths):
    model, T = tiny_gpt(attn_impl=attn_impl), 9
    padded = random_ids(len(lengths), T)
    mask = torch.tensor([[0] * (T - n) + [1] * n for n in lengths])
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # 0 at the first real token
    padded_logits, _ = model(padded, attention_mask=mask, position_ids=position_ids)
    for b, n in enumerate(lengths):
        alone, _ = model(padded[b:b + 1, T - n:])
        torch.testing.assert_close(padded_logits[b, T - n:], alone[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("attn_impl", ["manual", "sdpa"])
def test_kv_cache_decoding_matches_full_forward_at_every_step(attn_impl):
    model, ids = tiny_gpt(attn_impl=attn_impl), random_ids(2, 14)
    full_logits, _ = model(ids)
    cache = KVCache(model.config.n_layer)
    prompt_logits, _ = model(ids[:, :4], kv_cache=cache)  # prefill 4 tokens, then one at a time
    torch.testing.assert_close(prompt_logits, full_logits[:, :4], rtol=0, atol=1e-5)
    for t in range(4, ids.size(1)):
        step_logits, _ = model(ids[:, t:t + 1], kv_cache=cache)
        torch.testing.assert_close(step_logits[:, 0], full_logits[:, t], rtol=0, atol=1e-5)
    assert cache.seq_len == ids.size(1)


def test_kv_cache_decoding_with_left_padding_matches_full_forward():
    model, T = tiny_gpt(), 10
    ids = random_ids(2, T)
    mask = torch.tensor([[0, 0, 0] + [1] * (T - 3), [1] * T])
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    full_logits, _ = model(ids, attention_mask=mask, position_ids=position_ids)
    cache = KVCache(model.config.n_layer)
    model(ids[:, :5], attention_mask=mask[:, :5], position_ids=position_ids[:, :5], kv_cache=cache)
    for t in range(5, T):
        step_logits, _ = model(ids[:, t:t + 1], attention_mask=mask[:, :t + 1],
                               position_ids=position_ids[:, t:t + 1], kv_cache=cache)
        torch.testing.assert_close(step_logits[:, 0], full_logits[:, t], rtol=0, atol=1e-5)


def test_last_only_gives_the_last_positions_logits_of_the_full_forward():
    model, ids = tiny_gpt(), random_ids(2, 9)
    full, _ = model(ids)
    last, _ = model(ids, last_only=True)
    assert last.shape == (2, 1, VOCAB)
    torch.testing.assert_close(last, full[:, -1:], rtol=0, atol=1e-6)


def test_greedy_generate_gives_the_same_tokens_with_and_without_cache():
    model, prompt = tiny_gpt(), random_ids(2, 3)
    cached = model.generate(prompt, max_new_tokens=10, temperature=0, use_cache=True)
    uncached = model.generate(prompt, max_new_tokens=10, temperature=0, use_cache=False)
    assert cached.shape == (2, 13)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[:, :3], prompt)


def test_greedy_generate_picks_the_argmax_of_each_step():
    model, prompt = tiny_gpt(), random_ids(1, 3)
    out = model.generate(prompt, max_new_tokens=4, temperature=0)
    for t in range(3, 7):
        logits, _ = model(out[:, :t])
        assert out[0, t].item() == logits[0, -1].argmax().item()


def test_generate_past_block_size_crops_the_context_and_agrees_with_cache():
    model, prompt = tiny_gpt(block_size=8), random_ids(2, 6)
    cached = model.generate(prompt, max_new_tokens=12, temperature=0, use_cache=True)
    uncached = model.generate(prompt, max_new_tokens=12, temperature=0, use_cache=False)
    assert cached.shape == (2, 18)
    assert torch.equal(cached, uncached)
    last_window_logits, _ = model(cached[:, -9:-1])  # the final token comes from the last 8 tokens
    assert torch.equal(cached[:, -1], last_window_logits[:, -1].argmax(-1))


def test_prompt_longer_than_block_size_is_cropped_by_generate():
    model, prompt = tiny_gpt(block_size=8), random_ids(1, 11)
    assert model.generate(prompt, max_new_tokens=2, temperature=0).shape == (1, 13)


def test_forward_longer_than_block_size_raises_naming_block_size():
    with pytest.raises(ValueError, match="longer than block_size 16"):
        tiny_gpt()(random_ids(1, 17))


def test_initial_loss_is_close_to_log_vocab_size():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=512, block_size=32, n_layer=2, n_head=2, n_embd=32)).eval()
    ids = torch.randint(512, (8, 32))
    targets = torch.randint(512, (8, 32))  # random targets: nothing to predict, so ~uniform is best
    _, loss = model(ids, targets)
    assert loss.item() == pytest.approx(math.log(512), abs=0.05)


def test_tiny_gpt_overfits_one_batch():
    model = tiny_gpt().train()
    ids, targets = random_ids(4, 16, seed=2), random_ids(4, 16, seed=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(100):  # stops after ~20 steps
        _, loss = model(ids, targets)
        if loss.item() < 0.1:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1
