"""GGUF files (llama.cpp's format) into minilm's models: common/gguf.py reads the file, this room turns
its tensors into numbers and its names into minilm's.

    dequant.py  F32, F16, BF16, Q8_0, Q4_0, Q4_1 blocks -> float32 torch tensors
"""

from .dequant import SUPPORTED_TYPES, dequantize, dequantize_bytes

__all__ = ["SUPPORTED_TYPES", "dequantize", "dequantize_bytes"]
