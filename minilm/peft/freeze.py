"""Freezing: which parameters train. The simplest parameter-efficient method, and the first step
of every other one (freeze everything, then let the task head and the method's own tensors train).

    method "freeze", train_layers=0:  only the task head trains (a linear probe when the head is linear)
    method "freeze", train_layers=N:  the head, the top N blocks and what sits above them
                                      (GPT's ln_f, BERT's pooler)
"""

import torch.nn as nn

from .wrapped import find_blocks

ABOVE_BLOCKS = ("ln_f", "pooler")  # backbone modules between the last block and a task head


def freeze_all(model: nn.Module) -> None:
    for param in model.parameters():
        param.requires_grad_(False)


def unfreeze_by_prefix(model: nn.Module, prefixes: list[str]) -> None:
    """Let every parameter whose name starts with one of the prefixes train. A prefix that matches
    nothing is an error (a typo would otherwise silently train nothing)."""
    # remove_duplicate=False: a tied matrix answers to each of its names (GPT's lm_head.weight is wte.weight).
    named = list(model.named_parameters(remove_duplicate=False))
    for prefix in prefixes:
        matches = [param for name, param in named if name == prefix or name.startswith(prefix + ".")]
        if not matches:
            top_level = sorted({name.split(".")[0] for name, _ in named})
            raise ValueError(f"head name {prefix!r} matches no parameter; parameter names start with "
                             f"{', '.join(top_level)} (give prefixes such as 'classifier')")
        for param in matches:
            param.requires_grad_(True)


def apply_freeze(model: nn.Module, train_layers: int) -> None:
    """Let the top train_layers blocks (and ln_f / pooler above them) train; call after freeze_all."""
    if train_layers == 0:
        return
    blocks = find_blocks(model)
    if train_layers > len(blocks):
        raise ValueError(f"train_layers is {train_layers} but the model has {len(blocks)} blocks; "
                         f"choose 0 ... {len(blocks)}")
    for _, block in blocks[-train_layers:]:
        block.requires_grad_(True)
    backbone_name = ".".join(blocks[-1][0].split(".")[:-2])  # "bert.blocks.5" -> "bert"; "blocks.5" -> ""
    backbone = model.get_submodule(backbone_name)  # the module that holds `blocks`
    for name in ABOVE_BLOCKS:
        if hasattr(backbone, name):
            getattr(backbone, name).requires_grad_(True)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; a tied matrix counts once."""
    params = list(model.parameters())  # parameters() lists a shared Parameter once
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return trainable, sum(p.numel() for p in params)


def parameter_report(model: nn.Module) -> str:
    """One line, e.g. "trainable 123,456 / 22,713,216 (0.54%)"."""
    trainable, total = count_parameters(model)
    return f"trainable {trainable:,} / {total:,} ({100 * trainable / total:.2f}%)"
