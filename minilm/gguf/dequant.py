"""Dequantization: a GGUF tensor's bytes -> a float32 torch tensor of its shape.

A quantized tensor is a run of blocks, each holding 32 consecutive values of a row: one or two float16
numbers that scale the block, then small integers, one per value. Dequantizing a block is one line of
arithmetic, done here for all blocks at once (no Python loop over blocks):

    type   block bytes                                      value i of the block
    Q8_0   d (f16) | 32 × int8 q                            d * q[i]
    Q4_0   d (f16) | 16 bytes, two 4-bit q per byte         d * (q[i] - 8)
    Q4_1   d (f16) | m (f16) | 16 bytes, two 4-bit q        d * q[i] + m

The 4-bit types pack value i (i < 16) in the low half of byte i and value i + 16 in its high half. F32,
F16 and BF16 are plain arrays (bfloat16 is the top 16 bits of a float32). The arithmetic is float32 and in
the order written above, so the results are bit for bit those of llama.cpp's `gguf` package.
"""

import torch

from common.gguf import GGML_TYPES, GGUFError, GGUFFile

BLOCK = 32  # values per block of Q8_0, Q4_0 and Q4_1


def _plain(dtype):
    return lambda raw: raw.view(dtype).float()


def _q8_0(raw: torch.Tensor) -> torch.Tensor:
    blocks = raw.view(-1, 2 + BLOCK)  # (n_blocks, 34)
    d = _f16_column(blocks, 0)  # (n_blocks, 1)
    q = blocks[:, 2:].contiguous().view(torch.int8).float()  # (n_blocks, 32)
    return q * d


def _q4_0(raw: torch.Tensor) -> torch.Tensor:
    blocks = raw.view(-1, 2 + BLOCK // 2)  # (n_blocks, 18)
    d = _f16_column(blocks, 0)
    q = _nibbles(blocks[:, 2:]).float() - 8  # (n_blocks, 32), in -8..7
    return d * q


def _q4_1(raw: torch.Tensor) -> torch.Tensor:
    blocks = raw.view(-1, 4 + BLOCK // 2)  # (n_blocks, 20)
    d, m = _f16_column(blocks, 0), _f16_column(blocks, 2)
    q = _nibbles(blocks[:, 4:]).float()  # (n_blocks, 32), in 0..15
    return d * q + m


def _f16_column(blocks: torch.Tensor, at: int) -> torch.Tensor:
    """The float16 stored in bytes at, at+1 of every block, as a float32 column (n_blocks, 1)."""
    return blocks[:, at: at + 2].contiguous().view(torch.float16).float()


def _nibbles(packed: torch.Tensor) -> torch.Tensor:
    """(n_blocks, 16) bytes -> (n_blocks, 32) 4-bit values: the low halves first, then the high halves."""
    return torch.cat([packed & 0x0F, packed >> 4], dim=1)


_DEQUANTIZERS = {
    "F32": _plain(torch.float32), "F16": _plain(torch.float16), "BF16": _plain(torch.bfloat16),
    "Q8_0": _q8_0, "Q4_0": _q4_0, "Q4_1": _q4_1,
}
SUPPORTED_TYPES = tuple(_DEQUANTIZERS)


def dequantize_bytes(raw, ggml_type: int, shape: tuple[int, ...], where: str = "a GGUF tensor") -> torch.Tensor:
    """Bytes of one tensor of ggml type `ggml_type` -> float32 tensor of `shape` (torch order)."""
    type_name = GGML_TYPES.get(ggml_type, (f"type {ggml_type}",))[0]
    if type_name not in _DEQUANTIZERS:
        raise GGUFError(f"{where} is {type_name}, which minilm cannot dequantize (it reads "
                        f"{', '.join(SUPPORTED_TYPES)}): quantize the model to Q8_0 or Q4_1, or convert it "
                        "to F16, with llama.cpp")
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)  # a copy: the result never aliases the file
    return _DEQUANTIZERS[type_name](data).reshape(shape)


def dequantize(gguf_file: GGUFFile, name: str) -> torch.Tensor:
    """Tensor `name` of a GGUF file, dequantized to float32 in torch's shape."""
    info = gguf_file.tensors.get(name)
    raw = gguf_file.tensor_bytes(name)  # raises GGUFError naming the file when the tensor is absent
    return dequantize_bytes(raw, info.ggml_type, info.shape, f"{gguf_file.path}: tensor {name!r}")
