"""Checks for exercises 10-12, Llama's parts: rotary embeddings, RMSNorm, grouped-query attention."""

import torch

from minilm.model import LlamaConfig
from minilm.model.attention import build_allowed_mask
from minilm.model.llama import GroupedQueryAttention, RMSNorm
from minilm.model.rope import RotaryEmbedding, apply_rotary, rotate_half

from .checking import Exercise, Failed, close, generator, matches_one_of, max_diff, require_shape

# ---- 10. RoPE ---------------------------------------------------------------------------------------

ROPE = Exercise("rope", "e10_rope", ("rotate_half", "apply_rotary"),
                "rotary embeddings: turn pairs of dimensions by position")
B, H, T, D = 2, 3, 6, 16
POSITIONS = torch.tensor([3, 4, 5, 9, 10, 40])  # after a KV cache of 3, with a gap: not 0 ... T-1
HALVES = "pair i is dimensions i and i + d/2 (the halves)"


def rope_input(seed=0):
    return torch.randn(B, H, T, D, generator=generator(seed))


def library_rotary(x, positions, theta):
    cos, sin = RotaryEmbedding(x.size(-1), theta)(positions[None], x.dtype)  # (1, T, d) each
    return apply_rotary(x, cos, sin)


def neighbour_rotary(x, positions, theta):
    """The other layout: pairs (2i, 2i + 1), each turned by position · θ_i (Meta's original code, llama.cpp)."""
    d = x.size(-1)
    angle = positions[:, None].float() * theta ** (-torch.arange(0, d, 2).float() / d)  # (T, d/2)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * angle.cos() - b * angle.sin(), b * angle.cos() + a * angle.sin()], dim=-1).flatten(-2)


def rotary_mistakes(x, positions, theta) -> dict[str, torch.Tensor]:
    """What a wrong apply_rotary gives, by the message that names the mistake."""
    d = x.size(-1)
    cos, sin = (t[:, None] for t in RotaryEmbedding(d, theta)(positions[None], x.dtype))  # (1, 1, T, d)
    slow = positions[:, None].float() * theta ** (-torch.arange(d // 2).float() / d)  # θ_i = theta^(-i/d)
    slow = torch.cat([slow, slow], dim=-1)
    paired = (positions[:, None].float() * theta ** (-torch.arange(0, d, 2).float() / d)).repeat_interleave(2, -1)
    return {
        f"you turned neighbours (2i, 2i+1), the layout of Meta's original code and llama.cpp; here {HALVES}, as "
        "in transformers' Llama, and a checkpoint's q_proj and k_proj rows are ordered for it "
        "(docs/hf_weights.md, 'The q and k rows')": neighbour_rotary(x, positions, theta),
        "turned the wrong way (by -angle): x·cos + rotate_half(x)·sin, with rotate_half([x1, x2]) = [-x2, x1]":
            x * cos - rotate_half(x) * sin,
        "forgot cos on x: x_rot = x·cos(angle) + rotate_half(x)·sin(angle); without it the pairs grow instead "
        "of turning": x + rotate_half(x) * sin,
        "cos and sin swapped: x·cos(angle) + rotate_half(x)·sin(angle)": x * sin + rotate_half(x) * cos,
        "wrong frequencies: θ_i = theta^(-2i/d) for i = 0 ... d/2-1 (torch.arange(0, d, 2) / d), not "
        "theta^(-i/d)": x * slow.cos() + rotate_half(x) * slow.sin(),
        f"the angle of pair i goes to dimensions i and i + d/2: torch.cat([angle, angle], dim=-1), not "
        f"repeat_interleave ({HALVES})": x * paired.cos() + rotate_half(x) * paired.sin(),
        "used 0 ... T-1 instead of the positions given (after a KV cache of 3 tokens they start at 3)":
            library_rotary(x, torch.arange(x.size(2)), theta),
        "theta ignored: the frequencies are theta^(-2i/d) with the theta given (SmolLM2's is 100,000)":
            library_rotary(x, positions, 10000.0),
    }


def check_rotary(got, x, positions, theta, what: str) -> None:
    expected = library_rotary(x, positions, theta)
    require_shape("apply_rotary's output", got, expected.shape)
    if close(got, expected, atol=1e-4):
        return
    mistakes = rotary_mistakes(x, positions, theta)
    if theta == 10000.0:
        mistakes.pop(next(m for m in mistakes if m.startswith("theta ignored")))
    mistake = matches_one_of(got, mistakes, atol=1e-4)
    raise Failed(mistake or f"{what}: differs from minilm/model/rope.py by up to {max_diff(got, expected):.3g}")


@ROPE.check("rotate_half")
def _(m):
    x = torch.randn(2, 8, generator=generator(1))
    got = m.rotate_half(x.clone())
    require_shape("rotate_half's output", got, x.shape)
    x1, x2 = x.chunk(2, dim=-1)
    mistake = matches_one_of(got, {
        "rotate_half negated the wrong half: [x1, x2] -> [-x2, x1]": torch.cat([x2, -x1], dim=-1),
        "rotate_half swapped the halves but did not negate: [x1, x2] -> [-x2, x1]": torch.cat([x2, x1], dim=-1),
        f"rotate_half turned neighbours (2i, 2i+1); {HALVES}: [x1, x2] -> [-x2, x1]":
            torch.stack([-x[:, 1::2], x[:, 0::2]], dim=-1).flatten(-2),
    })
    if mistake or not close(got, rotate_half(x)):
        raise Failed(mistake or "rotate_half([x1, x2]) should be [-x2, x1], the halves of the last axis")


@ROPE.check("shape, dtype, x left as it was")
def _(m):
    x = rope_input()
    before = x.clone()
    got = m.apply_rotary(x, POSITIONS, 10000.0)
    require_shape("apply_rotary's output", got, x.shape)
    if got.dtype != x.dtype:
        raise Failed(f"apply_rotary returned {got.dtype} for a {x.dtype} x: give back x's dtype")
    if not torch.equal(x, before):
        raise Failed("x was changed in place: build a new tensor (x * cos + ..., not x *= cos)")


@ROPE.check("position 0 is not turned")
def _(m):
    x = rope_input(2)
    zeros = torch.zeros(T, dtype=torch.long)
    got = m.apply_rotary(x, zeros, 10000.0)
    if not close(got, x):
        check_rotary(got, x, zeros, 10000.0, "at position 0 every angle is 0, so x must come out unchanged")
        raise Failed("at position 0 every angle is 0, so x must come out unchanged")


@ROPE.check("matches minilm/model/rope.py")
def _(m):
    x = rope_input(3)
    check_rotary(m.apply_rotary(x, POSITIONS, 10000.0), x, POSITIONS, 10000.0, "apply_rotary")


@ROPE.check("another theta")
def _(m):
    x = rope_input(4)
    for theta in (100.0, 100000.0):
        check_rotary(m.apply_rotary(x, POSITIONS, theta), x, POSITIONS, theta, f"with theta {theta:g}")


@ROPE.check("q·k depends only on the distance")
def _(m):
    g = generator(5)
    q, k = torch.randn(1, 1, 1, D, generator=g), torch.randn(1, 1, 1, D, generator=g)

    def score(query_position, key_position):
        turned_q = m.apply_rotary(q, torch.tensor([query_position]), 10000.0)
        turned_k = m.apply_rotary(k, torch.tensor([key_position]), 10000.0)
        return (turned_q * turned_k).sum().item()

    for query_position, key_position in ((5, 2), (9, 9), (3, 7)):
        here, shifted = score(query_position, key_position), score(query_position + 20, key_position + 20)
        if abs(here - shifted) > 1e-3 * max(1.0, abs(here)):
            raise Failed(f"q·k changed when both positions moved by 20 (query {query_position}, key {key_position}: "
                         f"{here:.4f}; query {query_position + 20}, key {key_position + 20}: {shifted:.4f}); a pure "
                         "rotation by position · θ_i makes it depend on the distance only (did you forget cos?)")


# ---- 11. RMSNorm ------------------------------------------------------------------------------------

RMSNORM = Exercise("rmsnorm", "e11_rmsnorm", ("rms_norm",), "RMSNorm: divide by the root mean square, in float32")
C, EPS = 32, 1e-5


def rms_input(seed=0, scale=2.0, dtype=torch.float32):
    """x (2, 5, C) with a mean the norm must keep (0.35 * scale) and a weight that is not all ones."""
    g = generator(seed)
    x = (torch.randn(2, 5, C, generator=g) + 0.35) * scale
    weight = 1 + 0.5 * torch.randn(C, generator=g)
    return x.to(dtype), weight.to(dtype)


def library_rms_norm(x, weight, eps=EPS):
    norm = RMSNorm(x.size(-1), eps).to(x.dtype)
    with torch.no_grad():
        norm.weight.copy_(weight)
        return norm(x)


def rms_mistakes(x, weight, eps=EPS) -> dict[str, torch.Tensor]:
    mean_square = x.pow(2).mean(-1, keepdim=True)
    centred = x - x.mean(-1, keepdim=True)
    return {
        "subtracted the mean: that is LayerNorm; RMSNorm only divides by sqrt(mean(x²) + eps), it does not "
        "centre x": weight * centred / (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt(),
        "divided by the standard deviation: RMSNorm divides by the root mean square, sqrt(mean(x²) + eps), "
        "which includes the mean": weight * x / (x.var(-1, keepdim=True, correction=0) + eps).sqrt(),
        "took the sum of the squares, not their mean": weight * x / (x.pow(2).sum(-1, keepdim=True) + eps).sqrt(),
        "forgot the square root: divide by sqrt(mean(x²) + eps)": weight * x / (mean_square + eps),
        "forgot to multiply by weight (the learned scale, one number per feature)": x / (mean_square + eps).sqrt(),
        "forgot eps: rms(x) = sqrt(mean(x²) + eps); without it a small (or zero) x is divided by almost 0":
            weight * x / mean_square.sqrt(),
        "eps goes inside the square root: sqrt(mean(x²) + eps), not sqrt(mean(x²)) + eps":
            weight * x / (mean_square.sqrt() + eps),
        "normalised over the wrong axis: each token's C features are the last axis (dim=-1)":
            weight * x / (x.pow(2).mean(1, keepdim=True) + eps).sqrt(),
    }


def check_rms(got, x, weight, what: str) -> None:
    expected = library_rms_norm(x, weight)
    require_shape("rms_norm's output", got, x.shape)
    if close(got.float(), expected.float(), atol=1e-4):
        return
    mistake = matches_one_of(got.float(), rms_mistakes(x.float(), weight.float()), atol=1e-4)
    raise Failed(mistake or f"{what}: differs from minilm's RMSNorm by up to {max_diff(got, expected):.3g}")


@RMSNORM.check("shape and dtype")
def _(m):
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        x, weight = rms_input(dtype=dtype)
        got = m.rms_norm(x, weight, EPS)
        require_shape("rms_norm's output", got, x.shape)
        if got.dtype != dtype:
            raise Failed(f"rms_norm returned {got.dtype} for a {dtype} x: compute in float32, then cast back "
                         "with .to(x.dtype)")


@RMSNORM.check("matches minilm's RMSNorm")
def _(m):
    x, weight = rms_input(1)
    check_rms(m.rms_norm(x, weight, EPS), x, weight, "rms_norm")


@RMSNORM.check("eps, for small and zero vectors")
def _(m):
    x, weight = rms_input(2, scale=1e-3)  # mean(x²) about 1e-6, below eps: where eps matters
    x[0, 0] = 0.0
    got = m.rms_norm(x, weight, EPS)
    require_shape("rms_norm's output", got, x.shape)
    if not torch.isfinite(got).all():
        raise Failed("a vector of zeros gives NaN (0 / 0): add eps inside the square root, sqrt(mean(x²) + eps)")
    check_rms(got, x, weight, "with small inputs")


@RMSNORM.check("float16 without overflow")
def _(m):
    x, weight = rms_input(3, scale=600.0, dtype=torch.float16)  # |x| up to ~2,000: x² far above 65,504
    got = m.rms_norm(x, weight, EPS)
    require_shape("rms_norm's output", got, x.shape)
    expected = library_rms_norm(x, weight)
    finite = bool(torch.isfinite(got).all())
    if not finite or got.float().abs().max() < 1e-3:
        raise Failed("computed in float16: x² overflowed (65,504 is the largest float16; here |x| reaches "
                     f"{x.float().abs().max():.0f}) and the output is {0 if finite else 'NaN or inf'}; "
                     "compute in float32 (x.float()) and cast only the normalised result back")
    got, expected = got.float(), expected.float()
    if not close(got, expected, atol=1e-2):
        raise Failed(f"in float16: differs from minilm's RMSNorm by up to {max_diff(got, expected):.3g}")


@RMSNORM.check("bfloat16 computed in float32")
def _(m):
    x, weight = rms_input(4, dtype=torch.bfloat16)
    x = torch.cat([x] * 8, dim=1)  # (2, 40, C): enough numbers to count rounding differences
    got = m.rms_norm(x, weight, EPS)
    require_shape("rms_norm's output", got, x.shape)
    got = got.to(x.dtype)  # a float32 result is the dtype check's to name; here, what it holds
    x32 = x.float()
    float32_ways = [library_rms_norm(x, weight),  # and, a few last bits apart, the weight multiplied before the cast
                    (weight.float() * x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype)]
    differ = min((got != expected).float().mean().item() for expected in float32_ways)
    if differ <= 0.05:  # float32 with the operations in another order: a rare last-bit difference
        return
    in_bf16 = weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))
    if (got == in_bf16).float().mean() > 1 - differ:  # nearer the bfloat16 computation than the float32 ones
        raise Failed(f"normalised in bfloat16: {differ:.0%} of the outputs differ from RMSNorm's, which squares and "
                     "averages in float32 (bfloat16 keeps about 3 significant digits); x.float() first, .to(x.dtype) "
                     "at the end")
    check_rms(got, x, weight, "in bfloat16")
    raise Failed(f"in bfloat16: {differ:.0%} of the outputs differ from RMSNorm's in the last bits; square and "
                 "average in float32, then cast the normalised x back before multiplying by weight")


# ---- 12. GQA ----------------------------------------------------------------------------------------

GQA = Exercise("gqa", "e12_gqa", ("share_kv", "grouped_query_attention"),
               "grouped-query attention: query heads share key/value heads")
N_HEAD, N_KV, D_HEAD = 6, 2, 8  # groups of 3 query heads


def library_gqa(n_head, n_kv_head) -> GroupedQueryAttention:
    return GroupedQueryAttention(LlamaConfig(n_embd=n_head * D_HEAD, n_head=n_head, n_kv_head=n_kv_head))


def gqa_input(n_kv_head=N_KV, seed=0):
    g = generator(seed)
    q = torch.randn(B, N_HEAD, T, D_HEAD, generator=g)
    k, v = (torch.randn(B, n_kv_head, T, D_HEAD, generator=g) for _ in range(2))
    return q, k, v


def library_attention(q, k, v, n_kv_head):
    """GroupedQueryAttention's own steps: _share, then the written-out attention, causal."""
    attention = library_gqa(q.size(1), n_kv_head)
    allowed = build_allowed_mask(q.size(2), k.size(2), True, None, "cpu")
    return attention._attention_probs(q, attention._share(k), allowed) @ attention._share(v)


def wrong_attention(q, k, v, share, causal=True, scale=True):
    """Attention with one of the mistakes below: another share, no mask, no scaling."""
    k, v = share(k), share(v)
    scores = q @ k.transpose(-2, -1) / (q.size(-1) ** 0.5 if scale else 1.0)
    if causal:
        allowed = build_allowed_mask(q.size(2), k.size(2), True, None, "cpu")
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return scores.softmax(-1) @ v


@GQA.check("share_kv shape")
def _(m):
    _, k, _ = gqa_input()
    require_shape("share_kv(k, 6)", m.share_kv(k, N_HEAD), (B, N_HEAD, T, D_HEAD))


@GQA.check("share_kv groups consecutive query heads")
def _(m):
    head_index = torch.arange(N_KV, dtype=torch.float32)[None, :, None, None].expand(B, N_KV, T, D_HEAD)
    got = m.share_kv(head_index.clone(), N_HEAD)  # each output head holds the number of the head it reads
    require_shape("share_kv(k, 6)", got, (B, N_HEAD, T, D_HEAD))
    read = [int(i) for i in got[0, :, 0, 0].tolist()]
    group = N_HEAD // N_KV
    expected = [h // group for h in range(N_HEAD)]
    if read == [h % N_KV for h in range(N_HEAD)]:
        raise Failed(f"query heads read key/value heads {read[:N_HEAD]}, expected {expected}: you tiled the "
                     f"stack (repeat), so head h reads h % n_kv_head; each head serves {group} CONSECUTIVE query "
                     "heads: repeat_interleave(group, dim=1)")
    if read != expected:
        raise Failed(f"query heads read key/value heads {read}, expected {expected} (h // group)")


@GQA.check("share_kv with one key/value head, and with one per query head")
def _(m):
    for n_kv_head in (1, N_HEAD):  # multi-query attention; plain multi-head attention
        _, k, _ = gqa_input(n_kv_head, seed=1)
        expected = library_gqa(N_HEAD, n_kv_head)._share(k)
        got = m.share_kv(k, N_HEAD)
        require_shape(f"share_kv of {n_kv_head} head(s)", got, expected.shape)
        if not torch.equal(got, expected):
            raise Failed(f"with {n_kv_head} key/value head(s) for {N_HEAD} query heads, query head h must read "
                         f"key/value head h // {N_HEAD // n_kv_head}")


@GQA.check("grouped_query_attention shape")
def _(m):
    q, k, v = gqa_input()
    got = m.grouped_query_attention(q, k, v)
    if isinstance(got, torch.Tensor) and got.dim() == 4 and got.size(1) == N_KV:
        raise Failed(f"the output has {N_KV} heads (n_kv_head): every one of the {N_HEAD} query heads keeps its own "
                     "queries; share the keys and values (share_kv), not the queries")
    require_shape("the output", got, (B, N_HEAD, T, D_HEAD))


@GQA.check("matches GroupedQueryAttention")
def _(m):
    group = N_HEAD // N_KV
    for n_kv_head, seed in ((N_KV, 2), (1, 3), (N_HEAD, 4)):
        q, k, v = gqa_input(n_kv_head, seed)
        got = m.grouped_query_attention(q, k, v)
        expected = library_attention(q, k, v, n_kv_head)
        require_shape("the output", got, expected.shape)
        if close(got, expected):
            continue
        share = library_gqa(N_HEAD, n_kv_head)._share
        first_of_group = q[:, ::group].repeat_interleave(group, dim=1)  # one query per group, as if shared
        mean_of_group = q.view(B, N_KV, group, T, D_HEAD).mean(2).repeat_interleave(group, dim=1)
        mistake = matches_one_of(got, {
            "key/value heads tiled (repeat) instead of grouped (repeat_interleave): query head h must read "
            "key/value head h // group": wrong_attention(q, k, v, lambda t: t.repeat(1, N_HEAD // t.size(1), 1, 1)),
            "the queries were shared: each query head keeps its own queries; only the keys and values are shared":
                wrong_attention(first_of_group, k, v, share),
            "the queries were averaged over each group: each query head keeps its own queries; only the keys and "
            "values are shared": wrong_attention(mean_of_group, k, v, share),
            "no causal mask: query i may not see key j > i": wrong_attention(q, k, v, share, causal=False),
            "forgot to scale the scores by √d": wrong_attention(q, k, v, share, scale=False),
        } if n_kv_head == N_KV else {})
        raise Failed(mistake or f"with {n_kv_head} key/value head(s): differs from GroupedQueryAttention's "
                     f"attention by up to {max_diff(got, expected):.3g}")
