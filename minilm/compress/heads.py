"""Attention heads: how much each one matters, and taking the least important out of the model.

Importance (Michel, Levy & Neubig 2019, "Are Sixteen Heads Really Better than One?"; the math is in
docs/compression.md). Put a gate ξ_h on the output of each head h, all gates 1:

    attention output = Σ_h ξ_h · head_h(x) W_O,h          (W_O,h: head h's columns of out_proj)
    I_h = E_x |∂L(x) / ∂ξ_h|  =  E_x |⟨head_h(x), ∂L/∂head_h(x)⟩|

I_h is a first-order estimate of how much the loss changes when head h is switched off (ξ_h: 1 -> 0).
Each layer's scores are divided by their L2 norm, so that heads of different layers compare.

The gates are not part of the model: gated_heads multiplies the input of out_proj (the heads side by
side, (B, T, n_head * head_dim)) by them, from a forward pre-hook, while a `with` block lasts. With
gates of 0 the same hook switches heads off, which is how the tests check that prune_heads (which takes
the heads' rows out of q, k, v and their columns out of out_proj) changes nothing else.
"""

from contextlib import contextmanager

import torch
import torch.nn as nn

from common.errors import ConfigError

from ..model.transformer import TransformerModel


def transformer_of(model: nn.Module) -> TransformerModel:
    """The GPT or Bert inside model (itself, BertForPreTraining's .bert, a task head's .backbone)."""
    found = next((m for m in model.modules() if isinstance(m, TransformerModel)), None)
    if found is None:
        raise TypeError(f"{type(model).__name__} holds no GPT or Bert")
    return found


@contextmanager
def gated_heads(transformer: TransformerModel, gates: list[torch.Tensor]):
    """While inside, each head's output is multiplied by its gate: gates[layer] is (n_head,) or (B, n_head)."""
    handles = []
    for block, gate in zip(transformer.blocks, gates, strict=True):
        attn = block.attn

        def multiply(module, args, attn=attn, gate=gate):
            (heads,) = args  # (B, T, n_head * head_dim): the input of out_proj
            B, T, width = heads.shape
            per_head = heads.view(B, T, attn.n_head, attn.head_dim)  # (B, T, n_head, head_dim)
            g = gate.reshape(gate.shape[0] if gate.dim() == 2 else 1, 1, attn.n_head, 1)  # (B or 1, 1, n_head, 1)
            return (per_head * g).reshape(B, T, width),

        handles.append(attn.out_proj.register_forward_pre_hook(multiply))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def head_importance(model: nn.Module, batches, loss_of) -> list[torch.Tensor]:
    """I_h for every head, each layer normalised to unit L2 norm: a list of (n_head,) tensors, one per layer.

    batches: dicts of tensors whose first dimension is the batch; loss_of(model, batch) -> the batch's
    mean loss. The per-example gradient comes from one gate per example: with the loss a mean over the B
    examples, ∂(mean loss)/∂ξ_h of example b is ∂L(b)/∂ξ_h / B."""
    transformer = transformer_of(model)
    totals = [torch.zeros(block.attn.n_head) for block in transformer.blocks]
    n_examples, was_training = 0, model.training
    model.eval()  # no dropout: the gradient of the model that will be pruned
    try:
        for batch in batches:
            B = next(iter(batch.values())).size(0)
            weight = next(model.parameters())
            gates = [torch.ones(B, total.numel(), device=weight.device, dtype=weight.dtype, requires_grad=True)
                     for total in totals]
            with gated_heads(transformer, gates):
                loss = loss_of(model, batch)
            grads = torch.autograd.grad(loss, gates, allow_unused=True)  # (B, n_head) each
            for total, grad in zip(totals, grads):
                if grad is not None:  # None: a layer with no heads left
                    total += (grad * B).abs().sum(dim=0).cpu()  # |∂L(b)/∂ξ_h|, summed over examples
            n_examples += B
    finally:
        model.train(was_training)
    return [normalised(total / max(n_examples, 1)) for total in totals]


def normalised(scores: torch.Tensor) -> torch.Tensor:
    norm = scores.norm()
    return scores / norm if norm > 0 else scores


def least_important(importance: list[torch.Tensor], share: float) -> dict[int, list[int]]:
    """The share (0 <= share < 1) of all heads with the lowest scores, as {layer: [head, ...]}, ranked
    across layers. A layer may lose all of its heads (its attention then adds only out_proj's bias)."""
    if not 0 <= share < 1:
        raise ConfigError(f"the share of heads to prune must be in [0, 1), got {share}")
    ranked = sorted((float(score), layer, head) for layer, scores in enumerate(importance)
                    for head, score in enumerate(scores))
    n_prune = round(share * len(ranked))
    plan: dict[int, list[int]] = {}
    for _, layer, head in ranked[:n_prune]:
        plan.setdefault(layer, []).append(head)
    return {layer: sorted(heads) for layer, heads in sorted(plan.items())}


def prune_heads(model: nn.Module, plan: dict[int, list[int]]) -> list[int]:
    """Remove plan's heads ({layer: [head, ...]}, numbered within the layer as it is now) for good, in place:
    smaller q, k, v (their rows) and out_proj (its columns). Checkpoints record what each layer keeps
    (pruned.py), so the model saves and loads like any other. Returns the heads each layer now has."""
    transformer = transformer_of(model)
    check_plan(transformer, plan)
    for layer, heads in plan.items():
        attn = transformer.blocks[layer].attn
        kept = [h for h in range(attn.n_head) if h not in heads]
        # Head h owns the head_dim consecutive rows h * head_dim ... (h + 1) * head_dim - 1 of q, k and v.
        rows = torch.tensor([h * attn.head_dim + d for h in kept for d in range(attn.head_dim)], dtype=torch.long)
        attn.q_proj, attn.k_proj, attn.v_proj = (_keep_outputs(p, rows) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        attn.out_proj = _keep_inputs(attn.out_proj, rows)
        attn.n_head = len(kept)
    return [block.attn.n_head for block in transformer.blocks]


def check_plan(transformer: TransformerModel, plan: dict[int, list[int]]) -> None:
    """Refuse a plan that names a layer or head the model lacks, or prunes more heads than a layer has."""
    n_layer = len(transformer.blocks)
    for layer, heads in plan.items():
        if not 0 <= layer < n_layer:
            raise ConfigError(f"layer {layer}: the model has {n_layer} layers, numbered 0 to {n_layer - 1}")
        n_head = transformer.blocks[layer].attn.n_head
        if len(heads) > n_head:
            raise ConfigError(f"layer {layer}: asked to prune {len(heads)} heads but the layer has only {n_head}; "
                              f"name at most {n_head} distinct heads, 0 to {n_head - 1}")
        bad = [h for h in heads if not 0 <= h < n_head]
        if bad:
            raise ConfigError(f"layer {layer}: no head {bad[0]}; its {n_head} heads are numbered 0 to {n_head - 1}")
        if len(set(heads)) != len(heads):
            raise ConfigError(f"layer {layer}: head(s) {sorted({h for h in heads if heads.count(h) > 1})} named twice")


def _keep_outputs(linear: nn.Linear, rows: torch.Tensor) -> nn.Linear:
    """A Linear computing only the given outputs of linear: its weight rows (and bias entries)."""
    new = nn.Linear(linear.in_features, len(rows), bias=linear.bias is not None,
                    device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(linear.weight[rows])  # (len(rows), in)
        if linear.bias is not None:
            new.bias.copy_(linear.bias[rows])
    return new


def _keep_inputs(linear: nn.Linear, columns: torch.Tensor) -> nn.Linear:
    """A Linear reading only the given inputs of linear: its weight columns; the bias stays whole."""
    new = nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None,
                    device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, columns])  # (out, len(columns))
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    return new
