"""GGUF's tensor names -> minilm's Llama names, one row per tensor, and the row order of q and k.

llama.cpp names a Llama's tensors its own way (`blk.3.attn_q.weight`); minilm names them after its
modules (`blocks.3.attn.q_proj.weight`). Both store a linear layer's weight as (out, in) in torch's
order (GGUF lists the dimensions innermost first; common/gguf.py reverses them), so every tensor is
copied as it is, except the query and key projections, whose rows llama.cpp reorders for its rotary
kernel (`undo_rotary_permutation`; docs/hf_weights.md, "GGUF").
"""

import re

import torch

ROTARY_Q, ROTARY_K = "rows reordered for rotary (n_head heads)", "rows reordered for rotary (n_kv_head heads)"
COPY = "copy"

# (GGUF name, minilm name, how); {i} is the block's number.
NAME_TABLE = [
    ("token_embd.weight", "wte.weight", COPY),
    ("blk.{i}.attn_norm.weight", "blocks.{i}.ln_attn.weight", COPY),
    ("blk.{i}.attn_q.weight", "blocks.{i}.attn.q_proj.weight", ROTARY_Q),
    ("blk.{i}.attn_k.weight", "blocks.{i}.attn.k_proj.weight", ROTARY_K),
    ("blk.{i}.attn_v.weight", "blocks.{i}.attn.v_proj.weight", COPY),
    ("blk.{i}.attn_output.weight", "blocks.{i}.attn.out_proj.weight", COPY),
    ("blk.{i}.ffn_norm.weight", "blocks.{i}.ln_mlp.weight", COPY),
    ("blk.{i}.ffn_gate.weight", "blocks.{i}.mlp.gate_proj.weight", COPY),
    ("blk.{i}.ffn_up.weight", "blocks.{i}.mlp.up_proj.weight", COPY),
    ("blk.{i}.ffn_down.weight", "blocks.{i}.mlp.down_proj.weight", COPY),
    ("output_norm.weight", "ln_f.weight", COPY),
    ("output.weight", "lm_head.weight", COPY),  # absent when the head is tied to token_embd
]
_BY_PATTERN = {gguf: (minilm, how) for gguf, minilm, how in NAME_TABLE}


def minilm_name(gguf_name: str) -> tuple[str, str] | None:
    """(minilm name, how) of a GGUF tensor name, or None for a tensor minilm's Llama does not have."""
    match = re.fullmatch(r"blk\.(\d+)\.(.+)", gguf_name)
    pattern = f"blk.{{i}}.{match[2]}" if match else gguf_name
    if pattern not in _BY_PATTERN:
        return None
    minilm, how = _BY_PATTERN[pattern]
    return (minilm.format(i=int(match[1])) if match else minilm), how


def undo_rotary_permutation(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """q_proj or k_proj weight (n_heads * head_dim, C) from llama.cpp's row order back to transformers'.

    Rotary embeddings turn pairs of a head's dimensions. transformers' Llama (and minilm's, rope.py) pairs
    dimension j with dimension j + head_dim/2 (`rotate_half`). llama.cpp's kernel pairs neighbours,
    2j with 2j + 1, as Meta's original code did; so its converter moves the rows of q_proj and k_proj: in
    each head, the row that transformers has at h·head_dim/2 + j (h = 0 for the first half, 1 for the
    second; j < head_dim/2) is stored at 2j + h. Both layouts compute the same attention scores, since
    q·k sums over a head's dimensions in any order and each rotated pair stays a pair; only the pairing
    convention differs. v_proj and out_proj are not rotated and stay as they are.

    Viewing a head's rows as a (head_dim/2, 2) grid indexed [j, h] (the stored order, row 2j + h) and
    swapping the axes to [h, j] gives row h·head_dim/2 + j: transformers' order. k_proj has n_kv_head heads.
    """
    rows, in_features = weight.shape
    head_dim = rows // n_heads
    stored = weight.reshape(n_heads, head_dim // 2, 2, in_features)  # [head, j, h]: row 2j + h
    return stored.transpose(1, 2).reshape(rows, in_features)  # [head, h, j]: row h * head_dim/2 + j
