"""The int8 weight-only product for a few tokens at a time (decoding), reading the int8 weight itself.

Decoding one token multiplies one vector by every weight matrix of the model, so each token reads all
the weights once: on a CPU the time is the bytes read, not the arithmetic (SmolLM2's 538 MB of float32
weights at ~17 GB/s is 30 tokens/s). int8 weights are 4x fewer bytes, but only if the product reads the
int8 numbers directly. Turning the weight back into float32 first (Int8Linear's other path) writes and
reads a float32 copy of it, more bytes than float32 itself; and none of the products torch has on this
kind of CPU (AVX2, no AVX-512) is faster at one row (docs/compression.md has the measurements: torch's
packed int8 kernel, bf16, torch.compile of the dequantize-then-multiply, ...).

So this file holds one small C function, compiled here the first time it is needed, with the compiler
torch.compile uses too, and called through ctypes:

    y[m, n] = scale[n] · Σ_k w[n, k] · x[m, k]       w (N, K) int8, scale (N,), x (M, K) float32

Each weight row is read once (1 byte a number) and multiplied with the M rows of x while it sits in the
L1 cache; the sum is float32, and the row's scale is applied once after it (one multiply per output
instead of one per weight: per-output-channel scales allow that). Rows are split among torch's threads
by OpenMP, the same OpenMP torch runs on. `-O3 -march=native` lets the compiler turn the inner loop into
8-wide vector code (int8 -> float32 conversion and fused multiply-adds).

Where there is no C compiler, `gemv_kernel()` returns None (with one warning) and Int8Linear keeps its
dequantize-then-multiply path: the same numbers up to float32 rounding, only slower.
"""

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

C_SOURCE = r"""
#include <stdint.h>

/* y (M, N) = x (M, K) times w (N, K) transposed, each output column times scale[n]. */
void linear_int8(const float *x, const int8_t *w, const float *scale, float *y,
                 int64_t M, int64_t N, int64_t K, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const int8_t *row = w + n * K;
        for (int64_t m = 0; m < M; m++) {
            const float *xm = x + m * K;
            float acc = 0.0f;
            #pragma omp simd reduction(+:acc)
            for (int64_t k = 0; k < K; k++)
                acc += (float)row[k] * xm[k];
            y[m * N + n] = acc * scale[n];
        }
    }
}
"""
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]
MAX_ROWS = 16  # the kernel's time grows with the rows (the head, 1 thread, CPU ms: 6 at 1 row, 21 at 4, 82 at 16,
# where float32's blocked matmul takes 13, 40, 65); dequantizing once, then that matmul, costs a fixed
# ~0.4 s for the head but then wins for a long prompt

_kernel = "not built"  # the ctypes function, None where it cannot be built, or "not built" yet


def kernel_folder() -> Path:
    """Where the compiled library is kept: minilm's cache folder (MINILM_CACHE, as data/ reads it)."""
    return Path(os.environ.get("MINILM_CACHE", Path.home() / ".cache" / "minilm")).expanduser() / "kernels"


def gemv_kernel():
    """The compiled linear_int8 (built on first use, then reused), or None where this machine cannot build it."""
    global _kernel
    if _kernel == "not built":
        try:
            _kernel = _load(_build())
        except (OSError, subprocess.CalledProcessError, FileNotFoundError) as err:
            warnings.warn(f"the int8 decoding kernel cannot be built here ({type(err).__name__}: {err}); int8 "
                          "weight-only layers dequantize to float32 instead (slower, same numbers)", stacklevel=2)
            _kernel = None
    return _kernel


def _build() -> Path:
    """Compile C_SOURCE once per source and flags; the library's name carries their hash."""
    compiler = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if compiler is None:
        raise FileNotFoundError("no C compiler (gcc or cc) on PATH")
    machine = f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"  # -march=native: this CPU's kind
    tag = hashlib.sha256((C_SOURCE + " ".join(FLAGS) + compiler + machine).encode()).hexdigest()[:16]
    library = kernel_folder() / f"linear_int8-{tag}.so"
    if library.exists():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=library.parent) as tmp:  # compile beside it, then rename: atomic
        source, built = Path(tmp) / "linear_int8.c", Path(tmp) / library.name
        source.write_text(C_SOURCE)
        subprocess.run([compiler, *FLAGS, str(source), "-o", str(built)], check=True, capture_output=True)
        os.replace(built, library)
    return library


def _load(library: Path):
    function = ctypes.CDLL(str(library)).linear_int8
    function.restype = None
    function.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 3 + [ctypes.c_int]
    return function


def can_use(x: torch.Tensor, rows: int) -> bool:
    """Whether linear_int8 should take this input: a few float32 rows on the CPU, and the kernel is built."""
    return (rows <= MAX_ROWS and x.dtype == torch.float32 and x.device.type == "cpu" and not x.requires_grad
            and gemv_kernel() is not None)


def linear_int8(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (M, K) float32 times int8 weight (N, K), rescaled by scale (N,) -> (M, N) float32."""
    M, K = x.shape
    N = weight.shape[0]
    if weight.shape[1] != K or weight.dtype != torch.int8 or scale.shape != (N,) or scale.dtype != torch.float32:
        raise ValueError(f"linear_int8: x {tuple(x.shape)}, weight {tuple(weight.shape)} {weight.dtype}, scale "
                         f"{tuple(scale.shape)} {scale.dtype} do not fit (x (M, K), weight (N, K) int8, scale (N,))")
    x, weight, scale = x.contiguous(), weight.contiguous(), scale.contiguous()  # C reads them row by row
    y = torch.empty(M, N, dtype=torch.float32)
    gemv_kernel()(x.data_ptr(), weight.data_ptr(), scale.data_ptr(), y.data_ptr(), M, N, K, torch.get_num_threads())
    return y
