"""Magnitude pruning of the MLP weights, with torch.nn.utils.prune (docs/compression.md says what it saves).

    prune.l1_unstructured(fc, "weight", amount)   the `amount` share of entries with the smallest |w| -> 0:
                                                  fc.weight_orig (the parameter), fc.weight_mask (a buffer
                                                  of 0s and 1s), and a forward pre-hook that sets
                                                  fc.weight = weight_orig * weight_mask before each call
    prune.remove(fc, "weight")                    bake the zeros in: fc.weight is a plain parameter again

The zeros stay in a dense matrix: the file is as large and the matmul as slow as before. What it buys
is a model whose state_dict keys are the usual ones (after remove) with a share of exact zeros, the
starting point for a sparse format or for structured pruning of whole rows.
"""

import torch
import torch.nn.utils.prune as prune

from common.errors import ConfigError

from .heads import transformer_of


def prune_mlp(model: torch.nn.Module, amount: float) -> None:
    """Zero the `amount` share (0 <= amount < 1) of the smallest-magnitude weights of every MLP matrix
    (each fc_in and fc_out on its own), in place, and make it permanent."""
    if not 0 <= amount < 1:
        raise ConfigError(f"the share of MLP weights to prune must be in [0, 1), got {amount}")
    for block in transformer_of(model).blocks:
        for linear in (block.mlp.fc_in, block.mlp.fc_out):
            prune.l1_unstructured(linear, "weight", amount=amount)  # adds weight_orig, weight_mask, the hook
            prune.remove(linear, "weight")  # weight = weight_orig * weight_mask, as a plain parameter


def mlp_sparsity(model: torch.nn.Module) -> float:
    """The share of exact zeros in the MLP weight matrices."""
    weights = [linear.weight for block in transformer_of(model).blocks for linear in (block.mlp.fc_in, block.mlp.fc_out)]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
