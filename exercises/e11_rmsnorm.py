"""Exercise 11: RMSNorm, Llama's LayerNorm (docs/llama.md).

Check it with `python -m exercises check rmsnorm`.
"""

import torch  # noqa: F401


def rms_norm(x, weight, eps):
    """Divide each vector by its root mean square, then scale. x (..., C), weight (C,) -> like x.

        rms(x) = sqrt(mean(x²) + eps)        over the last axis, the C features of one token
        y      = weight · x / rms(x)

    No mean is subtracted and there is no bias: that is all that differs from LayerNorm.

    Compute in float32 whatever x's dtype is, and return x's dtype: in float16, x² overflows once |x| > 256
    (65,504 is the largest float16), and in bfloat16 the mean of squares keeps only about 3 significant
    digits.
    As minilm's RMSNorm (and transformers') does, cast the normalised x back to x's dtype before the
    multiplication by weight.

    Hint: x.float(), .pow(2).mean(dim=-1, keepdim=True), torch.rsqrt, .to(x.dtype).
    """
    raise NotImplementedError("write me: mean of squares in float32, eps, divide, cast back, scale")
