"""Symmetric int8 quantization, the arithmetic only (docs/compression.md has the math).

    scale = max|row| / 127             one float32 per row: per output channel of a weight, per token
                                        of an activation
    q     = round(x / scale)           an integer in [-127, 127], stored as int8
    x̂     = q · scale                  what the model computes with; |x - x̂| <= scale / 2

A matrix product of two quantized operands is a product of integers, rescaled once at the end:

    x Wᵀ ≈ (s_x q_x)(s_W q_W)ᵀ = s_x s_Wᵀ ⊙ (q_x q_Wᵀ)      q_x q_Wᵀ summed exactly in int32

torch._int_mm is that int8 x int8 -> int32 product. Where a build lacks it, int8_matmul multiplies the
same integers in float32 instead: the same numbers while every sum stays below 2²⁴ (the float32
mantissa), and no faster than float32 (docs/compression.md, "Without torch._int_mm").

Around the product, quantize_rows and rescale are a handful of elementwise passes each; eagerly, each
pass is a separate loop over the tensor (and, on a busy machine, a separate wait for every thread).
compile_kernels() has torch.compile fuse each function into one loop: the same arithmetic, fewer passes.
"""

import warnings

import torch

QMAX = 127  # symmetric: -127 ... 127; -128 is never used, so q and -q are both representable


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (..., K) float -> (q (..., K) int8, scale (..., 1) float32), one scale per row.

    No clamp is needed: |x| <= max|x| = 127 · scale, so |x / scale| <= 127. An all-zero row would get
    scale 0 and divide by zero; the smallest positive float instead leaves its q at 0."""
    scale = x.detach().abs().amax(dim=-1, keepdim=True).float().div_(QMAX)  # max|x| / 127: (..., 1)
    scale = scale.clamp_min_(torch.finfo(torch.float32).tiny)
    q = torch.div(x, scale).round_().to(torch.int8)  # round half to even, as torch.round does
    return q, scale


def dequantize_rows(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float32 numbers the int8 rows stand for: q (..., K) int8, scale (..., 1) -> (..., K)."""
    return q.float() * scale


def rescale(acc: torch.Tensor, w_scale: torch.Tensor, x_scale: torch.Tensor, bias: torch.Tensor | None):
    """The float32 result of an int8 product: acc (N, out) int32 times s_W (out,) and s_x (N, 1), plus the bias.
    In place after the one conversion: each new tensor this size costs more than the arithmetic on it."""
    y = acc.float().mul_(w_scale).mul_(x_scale)
    return y if bias is None else y.add_(bias)


def has_int_mm() -> bool:
    """Whether this torch build multiplies int8 matrices into int32 on the CPU."""
    if not hasattr(torch, "_int_mm"):
        return False
    try:
        torch._int_mm(torch.ones(2, 2, dtype=torch.int8), torch.ones(2, 2, dtype=torch.int8))
    except RuntimeError:
        return False
    return True


INT_MM = has_int_mm()


def int8_matmul(a: torch.Tensor, b_t: torch.Tensor) -> torch.Tensor:
    """a (M, K) int8 times b_t (K, N) int8 -> (M, N): int32 from torch._int_mm, else float32 (see the docstring)."""
    if INT_MM:
        return torch._int_mm(a, b_t)
    return a.float() @ b_t.float()


class Kernels:
    """The two elementwise steps Int8Linear calls: the functions above, or their compiled versions."""

    quantize_rows = staticmethod(quantize_rows)
    rescale = staticmethod(rescale)


def compile_kernels(enabled: bool = True) -> bool:
    """Have torch.compile fuse quantize_rows and rescale (True), or go back to the eager functions (False).
    Returns whether the compiled ones are in use: False, with a warning, where compiling fails (no C++
    compiler, say). The first call of each compiled function takes seconds; later calls reuse it."""
    if not enabled:
        Kernels.quantize_rows, Kernels.rescale = staticmethod(quantize_rows), staticmethod(rescale)
        return False
    try:
        fused_quantize = torch.compile(quantize_rows, dynamic=True)
        fused_rescale = torch.compile(rescale, dynamic=True)
        x = torch.randn(3, 8)
        q, scale = fused_quantize(x)  # compile now, on a small example: fail here rather than mid-forward
        fused_rescale(q.int()[:, :2], torch.ones(2), scale, torch.zeros(2))
    except Exception as err:  # torch.compile raises many kinds (a missing compiler, an unsupported build)
        warnings.warn(f"torch.compile is not available here ({type(err).__name__}: {err}); the int8 layers stay "
                      "eager", stacklevel=2)
        return False
    Kernels.quantize_rows, Kernels.rescale = staticmethod(fused_quantize), staticmethod(fused_rescale)
    return True
