"""Rotary position embeddings (RoPE; Su et al. 2021), the half-split form transformers' Llama uses.

GPT-2 adds a learned vector per position to the input. Llama instead turns each query and key inside
attention: dimension pair i of a head (dimensions i and i + head_dim/2) is rotated by the angle
position · θ_i, with θ_i = rope_theta^(-2i / head_dim):

    q_rot = q · cos(angle) + rotate_half(q) · sin(angle)        rotate_half([x1, x2]) = [-x2, x1]

A rotation by m·θ of the query and n·θ of the key leaves their dot product depending only on m - n:
attention sees relative positions (docs/llama.md; tests/test_llama.py checks it).
"""

import torch
import torch.nn as nn


class RotaryEmbedding(nn.Module):
    """cos and sin of every position's angles, computed once per forward and shared by all layers."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim  # 2i / head_dim
        inv_freq = 1.0 / (theta ** exponents)  # θ_i: (head_dim / 2,), fast for the first pairs, slow for the last
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # derived from the config, never saved

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """position_ids (B or 1, T) -> cos, sin, each (B or 1, T, head_dim), in float32 then cast to dtype."""
        angles = position_ids[..., None].float() * self.inv_freq  # (B, T, head_dim / 2): position · θ_i
        angles = torch.cat([angles, angles], dim=-1)  # (B, T, head_dim): pair i is dimensions i and i + head_dim/2
        return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[x1, x2] -> [-x2, x1], halves of the last dimension: each pair (a, b) becomes (-b, a), a quarter turn."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Turn each pair of x (B, n_heads, T, head_dim) by its angle; cos, sin (B or 1, T, head_dim)."""
    cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, head_dim): the same angles for every head
    return x * cos + rotate_half(x) * sin
