"""What LoRA, AdaLoRA and adapters share: a module that takes the place of one nn.Linear in each
Transformer block and keeps the Linear's weight and bias under the same names.

    blocks.0.attn.q_proj.weight   the frozen base weight, the very same Parameter (nothing copied)
    blocks.0.attn.q_proj.bias
    blocks.0.attn.q_proj.lora_A   the method's own tensors sit beside it

Keeping the names means a plain checkpoint's keys all match the PEFT model's, and merging gives
back a model whose state_dict is a plain one.
"""

import torch.nn as nn
import torch.nn.functional as F

from ..model import Block

# A target name -> where that nn.Linear sits inside a Block. The attention's four are the same in GPT-2, BERT
# and Llama; the MLP's differ: GPT-2 and BERT have fc_in, fc_out, Llama's SwiGLU gate_proj, up_proj, down_proj.
TARGET_PATHS = {
    "q_proj": "attn.q_proj", "k_proj": "attn.k_proj", "v_proj": "attn.v_proj", "out_proj": "attn.out_proj",
    "fc_in": "mlp.fc_in", "fc_out": "mlp.fc_out",
    "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "down_proj": "mlp.down_proj",
}


class WrappedLinear(nn.Module):
    """An nn.Linear's weight and bias, owned directly, plus whatever a subclass adds."""

    mergeable = False  # True where the addition is a weight update ΔW that merge_lora can fold in

    def __init__(self, base: nn.Linear):
        super().__init__()
        if type(base) is not nn.Linear:
            raise TypeError(f"expected a plain nn.Linear, got {type(base).__name__}: is PEFT already "
                            "applied to this model? Apply it once, to a fresh model.")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # (d_out, d_in)
        self.bias = base.bias  # (d_out,) or None

    def base_forward(self, x):  # (..., d_in) -> (..., d_out): the original layer
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def find_blocks(model: nn.Module) -> list[tuple[str, Block]]:
    """Every Transformer Block in the model, with its name (e.g. "blocks.3"), bottom to top."""
    blocks = [(name, module) for name, module in model.named_modules() if isinstance(module, Block)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} holds no Transformer Block; apply PEFT to a GPT, "
                         "a Bert, or a model that contains one")
    return blocks


def targets_in(block: nn.Module) -> list[str]:
    """The TARGET_PATHS names this block has (a GPT-2 block: fc_in, fc_out; a Llama block: gate/up/down_proj)."""
    return [name for name, path in TARGET_PATHS.items() if _linear_at(block, path) is not None]


def _linear_at(block: nn.Module, path: str) -> nn.Module | None:
    parent_name, child_name = path.split(".")
    return getattr(getattr(block, parent_name, None), child_name, None)


def replace_linears(model: nn.Module, targets: list[str], make) -> dict[str, nn.Module]:
    """In every block, swap each target Linear for make(linear). Returns {full name: new module}."""
    replaced = {}
    for block_name, block in find_blocks(model):
        for target in targets:
            linear = _linear_at(block, TARGET_PATHS[target])
            if linear is None:  # e.g. fc_in asked of a Llama, whose MLP is gate_proj, up_proj, down_proj
                raise ValueError(f"lora_targets: {type(model).__name__}'s blocks have no {target}; choose from "
                                 f"{','.join(targets_in(block))}")
            parent_name, child_name = TARGET_PATHS[target].split(".")
            parent = getattr(block, parent_name)
            new_module = make(linear)
            setattr(parent, child_name, new_module)
            replaced[f"{block_name}.{TARGET_PATHS[target]}"] = new_module
    return replaced
