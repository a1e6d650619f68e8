"""Exercise 9: LoRA's forward pass and merging the update into the weight (docs/peft.md).

Check it with `python -m exercises check lora`.
"""

import torch  # noqa: F401


def lora_forward(x, weight, bias, lora_A, lora_B, alpha, r):
    """A frozen Linear plus its low-rank update. x (..., d_in) -> (..., d_out).

    weight (d_out, d_in), bias (d_out,) or None: the frozen layer
    lora_A (r, d_in), lora_B (d_out, r): the trained update; alpha, r: its scaling is alpha / r

        y = x Wᵀ + b + (alpha / r) · x Aᵀ Bᵀ

    Hint: go through the rank r, (x @ A.T) @ B.T, rather than building B @ A: that is the whole point.
    """
    raise NotImplementedError("write me: base layer plus scaled low-rank path")


def lora_merge(weight, lora_A, lora_B, alpha, r):
    """The weight with the update folded in, W' = W + (alpha / r) · B A, (d_out, d_in), so that a plain
    Linear with W' (and the same bias) computes what lora_forward does. Do not change weight in place."""
    raise NotImplementedError("write me: W + scaling * B @ A")
