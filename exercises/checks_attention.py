"""Checks for exercises 1-4: attention, its mask, the pre-LN and post-LN blocks."""

import torch
import torch.nn as nn

from minilm.model import MultiHeadAttention, TransformerConfig
from minilm.model.blocks import transformer_block
from minilm.model.attention import build_allowed_mask

from .checking import Exercise, Failed, close, first_index, generator, matches_one_of, max_diff, require_shape

# ---- 1. attention -----------------------------------------------------------------------------------

ATTENTION = Exercise("attention", "e01_attention", ("attention",),
                     "scores, scaling, mask, softmax, weighted sum")
B, H, T, T_K, D = 2, 3, 4, 6, 16  # two cached keys: the queries are the last 4 of 6 positions


def attention_inputs(seed=0):
    g = generator(seed)
    q, k, v = (torch.randn(B, H, n, D, generator=g) for n in (T, T_K, T_K))
    padding = torch.ones(B, T_K, dtype=torch.long)
    padding[0, :2] = 0  # sequence 0 is left-padded: its keys 0 and 1 are padding
    padding[1, 4] = 0
    return q, k, v, build_allowed_mask(T, T_K, True, padding, "cpu")


def library_probs(q, k, allowed):
    attn = MultiHeadAttention(TransformerConfig(n_embd=q.size(1) * q.size(-1), n_head=q.size(1)), causal=False)
    return attn._attention_probs(q, k, allowed)


@ATTENTION.check("shapes")
def _(m):
    q, k, v, allowed = attention_inputs()
    for mask in (None, allowed):
        out, probs = m.attention(q, k, v, mask)
        require_shape("out", out, (B, H, T, D))
        require_shape("probs", probs, (B, H, T, T_K))


@ATTENTION.check("rows sum to 1")
def _(m):
    q, k, v, allowed = attention_inputs()
    for mask in (None, allowed):
        _, probs = m.attention(q, k, v, mask)
        sums = probs.sum(-1)
        has_key = torch.ones_like(sums, dtype=torch.bool) if mask is None else mask.expand_as(probs).any(-1)
        bad = has_key & ((sums - 1).abs() > 1e-4)
        if bad.any():
            b, h, i = first_index(bad)
            raise Failed(f"probabilities don't sum to 1 (query {i} of sequence {b}, head {h} sums to "
                         f"{sums[b, h, i]:.3g}): take the softmax over the last axis, the keys")


@ATTENTION.check("mask respected")
def _(m):
    q, k, v, allowed = attention_inputs()
    _, probs = m.attention(q, k, v, allowed)
    leaked = ~allowed.expand_as(probs) & (probs.abs() > 1e-6)
    if leaked.any():
        b, h, i, j = first_index(leaked)
        raise Failed(f"mask ignored (a masked key got weight {probs[b, h, i, j]:.2g}: sequence {b}, head {h}, "
                     f"query {i}, key {j}): fill the masked scores before the softmax")


@ATTENTION.check("scaled by √d")
def _(m):
    q, k, v, _ = attention_inputs()
    _, probs = m.attention(q, k, v, None)
    expected = library_probs(q, k, None)
    if close(probs, expected):
        return
    scores = q @ k.transpose(-2, -1)
    mistake = matches_one_of(probs, {
        "forgot to scale by √d (the probabilities are softmax(q kᵀ)); divide the scores by math.sqrt(d)":
            scores.softmax(-1),
        "scaled by d instead of √d": (scores / D).softmax(-1),
        "softmax over the queries instead of the keys: use dim=-1": (scores / D ** 0.5).softmax(-2),
    })
    difference = max_diff(probs, expected)
    raise Failed(mistake or f"probabilities differ from softmax(q kᵀ / √d) by up to {difference:.3g}")


@ATTENTION.check("weighted sum of the values")
def _(m):
    q, k, v, allowed = attention_inputs()
    out, _ = m.attention(q, k, v, allowed)
    expected = library_probs(q, k, allowed) @ v
    if not close(out, expected):
        raise Failed(f"out is not probs @ v (differs from the library's by up to {max_diff(out, expected):.3g})")


@ATTENTION.check("a query with no allowed key")
def _(m):
    q, k, v, _ = attention_inputs()
    allowed = torch.ones(B, 1, T, T_K, dtype=torch.bool)
    allowed[0, 0, 1] = False  # query 1 of sequence 0 may look at nothing (a padding query under the causal mask)
    out, probs = m.attention(q, k, v, allowed)
    if torch.isnan(probs).any() or torch.isnan(out).any():
        raise Failed("a query with no allowed key gives NaN: fill masked scores with torch.finfo(dtype).min, "
                     "not -inf (docs/attention.md, 'Why m and not -inf')")
    if probs[0, :, 1].abs().max() > 1e-6 or out[0, :, 1].abs().max() > 1e-6:
        raise Failed("a query with no allowed key should get all-zero probabilities and a zero output: set the "
                     "masked P to 0 again after the softmax")


# ---- 2. the mask ------------------------------------------------------------------------------------

MASK = Exercise("mask", "e02_mask", ("allowed_mask",), "the causal + padding mask, with a KV cache offset")


def full(allowed, batch, n_query, n_key):
    """allowed broadcast to (batch, 1, n_query, n_key), after checking that it has 4 axes that broadcast."""
    if not isinstance(allowed, torch.Tensor):
        raise Failed(f"expected a bool tensor, got {type(allowed).__name__}")
    if allowed.dtype != torch.bool:
        raise Failed(f"allowed should be bool (True = may attend), got {allowed.dtype}")
    try:
        if allowed.dim() != 4 or allowed.size(1) != 1:
            raise RuntimeError
        return allowed.expand(batch, 1, n_query, n_key)
    except RuntimeError:
        raise Failed(f"wrong shape (expected ({batch} or 1, 1, {n_query}, {n_key}), got {tuple(allowed.shape)})") \
            from None


def compare_mask(got, expected, what):
    wrong = got != expected
    if wrong.any():
        b, _, i, j = first_index(wrong)
        verb = "may not" if expected[b, 0, i, j] else "attends to"
        if verb == "attends to" and j > i + (got.size(-1) - got.size(-2)):
            raise Failed(f"not causal ({what}query {i} attends to key {j}, a later position)")
        raise Failed(f"{what}sequence {b}: query {i} {'attends to' if got[b, 0, i, j] else 'may not see'} key {j}, "
                     f"expected {'allowed' if expected[b, 0, i, j] else 'masked'}")


@MASK.check("shape and dtype")
def _(m):
    full(m.allowed_mask(5, 5, True, None), 1, 5, 5)
    full(m.allowed_mask(3, 5, True, torch.ones(2, 5, dtype=torch.long)), 2, 3, 5)


@MASK.check("causal")
def _(m):
    got = full(m.allowed_mask(6, 6, True, None), 1, 6, 6)
    compare_mask(got, torch.ones(6, 6, dtype=torch.bool).tril()[None, None], "")


@MASK.check("KV cache offset")
def _(m):
    got = full(m.allowed_mask(2, 6, True, None), 1, 2, 6)
    expected = build_allowed_mask(2, 6, True, None, "cpu")
    if (got != expected).any():
        b, _, i, j = first_index(got != expected)
        raise Failed(f"with 4 cached keys (n_query=2, n_key=6) query {i} sits at position {4 + i}: key {j} should "
                     f"be {'allowed' if expected[b, 0, i, j] else 'masked'} (use tril(diagonal=n_key - n_query))")


@MASK.check("padding")
def _(m):
    padding = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]])
    got = full(m.allowed_mask(5, 5, False, padding), 2, 5, 5)
    expected = build_allowed_mask(5, 5, False, padding, "cpu").expand(2, 1, 5, 5)
    if (got & ~expected).any():
        b, _, i, j = first_index(got & ~expected)
        raise Failed(f"padding ignored (sequence {b}, key {j} is padding but query {i} may attend to it)")
    if (~got & expected).any():
        b, _, i, j = first_index(~got & expected)
        raise Failed(f"sequence {b}: query {i} may not see key {j}, a real token (mask only the padding KEYS, "
                     "never the queries)")


@MASK.check("causal and padding together")
def _(m):
    padding = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]]).bool()  # left padding, right padding
    got = full(m.allowed_mask(3, 6, True, padding), 2, 3, 6)
    compare_mask(got, build_allowed_mask(3, 6, True, padding, "cpu").expand(2, 1, 3, 6), "")


@MASK.check("nothing masked")
def _(m):
    got = m.allowed_mask(4, 4, False, None)
    if got is not None and not (isinstance(got, torch.Tensor) and got.dtype == torch.bool and got.all()):
        raise Failed("with causal=False and no attention_mask every key is allowed: return None")


# ---- 3 and 4. the blocks ----------------------------------------------------------------------------

PRE_LN = Exercise("pre_ln", "e03_pre_ln", ("pre_ln_block",), "a pre-LN block's forward (GPT-2)")
POST_LN = Exercise("post_ln", "e04_post_ln", ("post_ln_block",), "a post-LN block's forward (BERT)")


class Counted:
    """A sub-module as a callable that counts its calls."""

    def __init__(self, name, fn):
        self.name, self.fn, self.calls = name, fn, 0

    def __call__(self, x):
        self.calls += 1
        return self.fn(x)


def block_and_parts(pre_ln: bool):
    torch.manual_seed(0)
    block = transformer_block(TransformerConfig(n_embd=16, n_head=2, dropout=0.0, attn_dropout=0.0), causal=True,
                              pre_ln=pre_ln)
    for ln in (block.ln_attn, block.ln_mlp):  # not the identity, so that a swapped LayerNorm shows
        nn.init.normal_(ln.weight, 1.0, 0.5)
        nn.init.normal_(ln.bias, 0.0, 0.5)
    parts = dict(attn=lambda h: block.attn(h), mlp=block.mlp, ln_attn=block.ln_attn, ln_mlp=block.ln_mlp)
    x = torch.randn(2, 5, 16, generator=generator(1))
    return block, parts, x


def block_variants(parts, x):
    a, f, ln1, ln2 = parts["attn"], parts["mlp"], parts["ln_attn"], parts["ln_mlp"]
    pre = x + a(ln1(x))
    post = ln1(x + a(x))
    return {
        "pre": pre + f(ln2(pre)),
        "post": ln2(post + f(post)),
        "pre, no residual": f(ln2(a(ln1(x)))),
        "post, no residual": ln2(f(ln1(a(x)))),
        "pre, LayerNorms swapped": (lambda y: y + f(ln1(y)))(x + a(ln2(x))),
        "post, LayerNorms swapped": (lambda y: ln1(y + f(y)))(ln2(x + a(x))),
        "pre, parallel branches": x + a(ln1(x)) + f(ln2(x)),
    }


def run_block(fn, pre_ln: bool):
    """Call the learner's block on a real Block's parts: (what it returned, Block's own output, ...)."""
    block, parts, x = block_and_parts(pre_ln)
    with torch.no_grad():
        expected = block(x)
        x_before = x.clone()
        counted = {name: Counted(name, part) for name, part in parts.items()}
        got = fn(x, **counted)
    require_shape("the output", got, x.shape)
    return got, expected, parts, x, x_before, counted


def check_not_in_place(fn, pre_ln):
    _, _, _, x, x_before, _ = run_block(fn, pre_ln)
    if not torch.equal(x, x_before):
        raise Failed("x was changed in place (x += ... changes the caller's tensor; write x = x + ...)")


def check_called_once(fn, pre_ln):
    for c in run_block(fn, pre_ln)[-1].values():
        if c.calls != 1:
            raise Failed(f"{c.name} was called {c.calls} times: call each sub-module once")


def check_matches_block(fn, pre_ln):
    got, expected, parts, x, _, _ = run_block(fn, pre_ln)
    if close(got, expected):
        return
    with torch.no_grad():
        variants = block_variants(parts, x)
    kind, other = ("pre", "post") if pre_ln else ("post", "pre")
    formula = "x + attn(ln_attn(x)), then x + mlp(ln_mlp(x))" if pre_ln else \
        "ln_attn(x + attn(x)), then ln_mlp(x + mlp(x))"
    mistake = matches_one_of(got, {
        f"this is the {other}-LN block; {kind}-LN is {formula}": variants[other],
        f"the residual is missing: {formula}": variants[f"{kind}, no residual"],
        f"ln_attn and ln_mlp are swapped: {formula}": variants[f"{kind}, LayerNorms swapped"],
        "the MLP branch must read the x that already includes the attention branch, not the block's input":
            variants["pre, parallel branches"],
    })
    raise Failed(mistake or f"differs from Block(pre_ln={pre_ln}) by up to {max_diff(got, expected):.3g}: {formula}")


for _exercise, _fn, _pre_ln in ((PRE_LN, "pre_ln_block", True), (POST_LN, "post_ln_block", False)):
    for _name, _check in (("shape", lambda fn, pre_ln: run_block(fn, pre_ln)),
                          ("x not changed in place", check_not_in_place),
                          ("each sub-module called once", check_called_once),
                          (f"matches Block(pre_ln={_pre_ln})", check_matches_block)):
        _exercise.check(_name)(lambda m, check=_check, fn=_fn, pre_ln=_pre_ln: check(getattr(m, fn), pre_ln))
