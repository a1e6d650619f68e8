"""Exercise 10: rotary position embeddings, RoPE, as Llama uses them (docs/llama.md).

Check it with `python -m exercises check rope`.
"""

import torch  # noqa: F401


def rotate_half(x):
    """Turn every pair of the last dimension a quarter turn. x (..., d) -> (..., d), d even.

    Pair i is dimension i and dimension i + d/2 (the two HALVES of the last axis, not neighbours):

        x = [x1, x2]  (each of d/2 numbers)   ->   [-x2, x1]

    so the pair (a, b) becomes (-b, a): the point (a, b) turned by 90 degrees.

    Hint: x.chunk(2, dim=-1) gives the halves; torch.cat puts them together again.
    """
    raise NotImplementedError("write me: split into halves, swap them, negate the new first half")


def apply_rotary(x, positions, theta=10000.0):
    """Turn pair i of every query or key at position p by the angle p · θ_i. Returns a tensor like x.

    x          (B, H, T, d)   queries or keys, split into heads; d even
    positions  (T,)           the position of each of the T tokens (integers, not always 0 ... T-1)
    theta      the base of the frequencies (rope_theta: 10,000 for Llama 2, 100,000 for SmolLM2)

        θ_i    = theta ** (-2i / d)              for i = 0 ... d/2 - 1: pair 0 turns fastest
        angle  = positions[:, None] * θ_i        (T, d/2), then the same again for the second half: (T, d)
        x_rot  = x · cos(angle) + rotate_half(x) · sin(angle)

    A pair (a, b) turned by φ is (a cos φ - b sin φ, b cos φ + a sin φ): that is the last line, written
    for all pairs at once.

    Hint: torch.arange(0, d, 2) gives the 2i; torch.cat([angle, angle], dim=-1) lines the angle of pair i
    up with dimensions i and i + d/2; cos (T, d) broadcasts against x (B, H, T, d).
    """
    raise NotImplementedError("write me: frequencies, angles, cos and sin, then turn x")
