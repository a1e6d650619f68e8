"""GGUF files (llama.cpp's format) into minilm's models: common/gguf.py reads the file, this room turns
its tensors into numbers and its names into minilm's.

    dequant.py  F32, F16, BF16, Q8_0, Q4_0, Q4_1 blocks -> float32 torch tensors
    names.py    the name table (blk.3.attn_q.weight -> blocks.3.attn.q_proj.weight); q and k rows put back
    load.py     load_gguf: LlamaConfig from the metadata, the weights into a Llama
"""

from .dequant import SUPPORTED_TYPES, dequantize, dequantize_bytes
from .load import is_gguf, llama_config, llama_state_dict, load_gguf
from .names import NAME_TABLE, undo_rotary_permutation

__all__ = ["NAME_TABLE", "SUPPORTED_TYPES", "dequantize", "dequantize_bytes", "is_gguf", "llama_config",
           "llama_state_dict", "load_gguf", "undo_rotary_permutation"]
