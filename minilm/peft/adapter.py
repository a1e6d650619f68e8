"""Bottleneck adapters (Houlsby et al. 2019): a small trained MLP with a residual, after the
attention and after the MLP of every block, while the rest of the model stays frozen.

    adapter(y) = y + W_up · act(W_down · y + b_down) + b_up     W_down: (m, C), W_up: (C, m), m << C

W_up and b_up start at zero, so each adapter starts as the identity and the model as the base model.

Where it sits: each sub-layer ends in a projection (attn.out_proj; mlp.fc_out, or a Llama's mlp.down_proj)
whose output y is the sub-layer's output (then dropout, then the residual add). The adapter wraps that
projection, so y becomes adapter(y) and nothing in blocks.py changes; the projection keeps its weight names.
"""

import torch.nn as nn

from .wrapped import WrappedLinear, find_blocks, replace_linears, targets_in

ADAPTED = ["out_proj", "fc_out", "down_proj"]  # the last Linear of the attention and of the MLP (GPT-2/BERT, Llama)


class Adapter(nn.Module):
    def __init__(self, n_embd: int, size: int):
        super().__init__()
        self.down = nn.Linear(n_embd, size)
        self.act = nn.GELU()
        self.up = nn.Linear(size, n_embd)
        nn.init.zeros_(self.up.weight)  # starts as the identity: adapter(y) = y
        nn.init.zeros_(self.up.bias)

    def forward(self, y):  # (..., C) -> (..., C)
        return y + self.up(self.act(self.down(y)))  # (..., m) in the middle


class AdapterLinear(WrappedLinear):
    """A sub-layer's output projection followed by an adapter."""

    def __init__(self, base: nn.Linear, size: int):
        super().__init__(base)
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.adapter = Adapter(self.out_features, size).to(**like)

    def forward(self, x):  # (..., d_in) -> (..., C)
        return self.adapter(self.base_forward(x))


def add_adapters(model: nn.Module, size: int) -> dict[str, AdapterLinear]:
    """Two adapters per block: after the attention and after the MLP."""
    present = targets_in(find_blocks(model)[0][1])
    return replace_linears(model, [name for name in ADAPTED if name in present],
                           lambda linear: AdapterLinear(linear, size))
