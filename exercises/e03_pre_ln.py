"""Exercise 3: the forward pass of a pre-LN Transformer block, GPT-2's (docs/blocks.md).

Check it with `python -m exercises check pre_ln`.
"""


def pre_ln_block(x, attn, mlp, ln_attn, ln_mlp):
    """One pre-LN block. x (B, T, C) -> (B, T, C).

    attn, mlp, ln_attn, ln_mlp are callables, each (B, T, C) -> (B, T, C): the block's attention, its
    MLP and its two LayerNorms. Call each of them once.

        x = x + attn(ln_attn(x))
        x = x + mlp(ln_mlp(x))

    Hint: the LayerNorm sits inside each branch, the residual stream x itself is never normalised.
    """
    raise NotImplementedError("write me: two residual branches, LayerNorm first in each")
