"""LoRA (Hu et al. 2021): a frozen weight plus a trained low-rank update.

    y = x Wᵀ + b + (alpha / r) · dropout(x) Aᵀ Bᵀ        A: (r, d_in), B: (d_out, r), r << d

W and b stay frozen; only A and B train: r·(d_in + d_out) numbers instead of d_in·d_out. B starts
at zero, so the model starts exactly as the base model; A starts random, so B's gradient is not zero.
For inference the update folds into the weight, W' = W + (alpha / r)·B·A (merge_lora), and the
model is a plain model again: no extra cost per token.
"""

import math

import torch
import torch.nn as nn

from .wrapped import WrappedLinear, replace_linears


class LoRALinear(WrappedLinear):
    mergeable = True  # the update is linear in x, so it folds into the weight

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float, init: str = "kaiming"):
        super().__init__(base)
        self.r, self.scaling = r, alpha / r
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, self.in_features, **like))  # (r, d_in)
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, **like))  # (d_out, r)
        self.lora_dropout = nn.Dropout(dropout)
        if init == "kaiming":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # what nn.Linear does to its own weight
        else:
            nn.init.normal_(self.lora_A, std=1.0 / r)

    def forward(self, x):  # (..., d_in) -> (..., d_out)
        update = self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., r) then (..., d_out)
        return self.base_forward(x) + self.scaling * update

    def delta_weight(self) -> torch.Tensor:
        return self.scaling * (self.lora_B @ self.lora_A)  # (d_out, d_in)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r={self.r}, scaling={self.scaling:g}"


def add_lora(model: nn.Module, targets: list[str], r: int, alpha: float, dropout: float,
             init: str = "kaiming") -> dict[str, LoRALinear]:
    """Put a LoRALinear in place of each target Linear of every block."""
    return replace_linears(model, targets, lambda linear: LoRALinear(linear, r, alpha, dropout, init))


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA / AdaLoRA update into its weight, W' = W + ΔW, and put a plain nn.Linear back
    in its place. The model (changed in place, and returned) has the base model's state_dict keys."""
    for name, module in list(model.named_modules()):
        if not getattr(module, "mergeable", False):
            continue
        linear = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                           device=module.weight.device, dtype=module.weight.dtype)
        linear.weight.copy_(module.weight + module.delta_weight())
        linear.weight.requires_grad_(module.weight.requires_grad)
        if module.bias is not None:
            linear.bias.copy_(module.bias)
            linear.bias.requires_grad_(module.bias.requires_grad)
        parent_name, _, child_name = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child_name, linear)
    return model
