"""Where two implementations part: the output of every layer of minilm's model beside the same layer of
transformers', on the same inputs, for `python -m minilm.parity` (which reports the first that differs).

A forward hook on a module sees its output each time it runs. Hooks on the matching layers of both models
(MATCHING below: embedding, each block, final norm, logits) record those outputs during one forward pass of
each; the layers are then compared in the order the data flows through them. The first whose output differs
beyond the tolerance is where the bug is: every layer before it received the same input and gave the same
output. (ALBERT runs one block at every depth: its one module is hooked once and records n_layer outputs,
one per call, in order; so does transformers' shared layer.)

Works on the model objects alone: transformers is never imported here, only its modules' attribute names read.
"""

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from minilm.model import GPT, Bert, Llama


@dataclass
class LayerDiff:
    layer: str  # "embedding", "block 3", "final norm", "logits"
    max_diff: float  # max|Δ| over the positions that count
    mean_diff: float
    scale: float  # max|reference|: the tolerance is relative past 1


def matching_layers(ours, theirs) -> list[tuple[str, list[nn.Module], list[nn.Module]]]:
    """(name, minilm's modules, transformers' modules) in the order the data flows; "block" lists every block."""
    if isinstance(ours, Llama):  # LlamaForCausalLM: the decoder under .model, the head outside it
        base = theirs.model
        return [("embedding", [ours.wte], [base.embed_tokens]), ("block", list(ours.blocks), list(base.layers)),
                ("final norm", [ours.ln_f], [base.norm]), ("logits", [ours.lm_head], [theirs.lm_head])]
    if isinstance(ours, GPT):  # GPT2LMHeadModel; the dropout after wte + wpe is where the embedding ends
        base = theirs.transformer
        return [("embedding", [ours.drop], [base.drop]), ("block", list(ours.blocks), list(base.h)),
                ("final norm", [ours.ln_f], [base.ln_f]), ("logits", [ours.lm_head], [theirs.lm_head])]
    encoder = ours if isinstance(ours, Bert) else ours.bert  # BERT-style: post-LN, so no final norm
    base = theirs.base_model
    return [("embedding", [encoder.embeddings], [base.embeddings]), ("block", list(encoder.blocks), _layers(base))]


def _layers(base) -> list[nn.Module]:
    """transformers' encoder blocks: DistilBERT's transformer.layer, ALBERT's shared layer, else encoder.layer."""
    if hasattr(base, "transformer"):
        return list(base.transformer.layer)
    if hasattr(base.encoder, "albert_layer_groups"):
        return [layer for group in base.encoder.albert_layer_groups for layer in group.albert_layers]
    return list(base.encoder.layer)


def _record(groups: list[list[nn.Module]]):
    """Hook every distinct module of each group; each call's output is appended to its group's list."""
    outputs, handles = [[] for _ in groups], []
    for found, modules in zip(outputs, groups):
        for module in {id(m): m for m in modules}.values():  # a shared block is hooked once
            handles.append(module.register_forward_hook(
                lambda _module, _inputs, out, found=found: found.append(out[0] if isinstance(out, tuple) else out)))
    return outputs, handles


@torch.no_grad()
def layer_diffs(ours, theirs, run_ours: Callable, run_theirs: Callable, real=None) -> list[LayerDiff]:
    """Run both forwards once under hooks; compare each layer's output on the positions real (B, T) marks."""
    layers = matching_layers(ours, theirs)
    ours_out, ours_handles = _record([modules for _, modules, _ in layers])
    theirs_out, theirs_handles = _record([modules for _, _, modules in layers])
    try:
        run_ours()
        run_theirs()
    finally:
        for handle in ours_handles + theirs_handles:
            handle.remove()
    rows = []
    for (name, _, _), mine, reference in zip(layers, ours_out, theirs_out):
        for i, (a, b) in enumerate(zip(mine, reference)):  # blocks in the order they ran
            if real is not None:
                a, b = a[real], b[real]  # (n_real, ...): padding positions do not count
            delta = (a.float() - b.float()).abs()
            rows.append(LayerDiff(f"{name} {i}" if name == "block" else name, delta.max().item(),
                                  delta.mean().item(), b.abs().max().item()))
    return rows


def first_divergence(rows: list[LayerDiff], tol: float) -> LayerDiff | None:
    """The first layer whose max|Δ| exceeds tol * max(1, max|ref|), or None."""
    return next((row for row in rows if row.max_diff > tol * max(1.0, row.scale)), None)
