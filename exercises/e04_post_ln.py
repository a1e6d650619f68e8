"""Exercise 4: the forward pass of a post-LN Transformer block, BERT's (docs/blocks.md).

Check it with `python -m exercises check post_ln`.
"""


def post_ln_block(x, attn, mlp, ln_attn, ln_mlp):
    """One post-LN block. x (B, T, C) -> (B, T, C).

    attn, mlp, ln_attn, ln_mlp are callables, each (B, T, C) -> (B, T, C): the block's attention, its
    MLP and its two LayerNorms. Call each of them once.

        x = ln_attn(x + attn(x))
        x = ln_mlp(x + mlp(x))

    Hint: here the LayerNorm comes after the residual sum, so the stream is normalised after each branch.
    """
    raise NotImplementedError("write me: residual sum first, then the LayerNorm, twice")
