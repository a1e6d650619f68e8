"""FSDP2: each process keeps only its shard of every parameter, gradient and optimizer state.

DDP keeps a whole copy of the model, its gradients and AdamW's two moments (16 bytes a parameter in
float32) on every device; FSDP (`fully_shard`) cuts each of them into world_size pieces. Before a
Block runs, its full weights are gathered from all processes (all-gather) and freed right after;
after backward, its gradients are summed and scattered so each process keeps its own slice
(reduce-scatter), and the optimizer steps only that slice. docs/scaling.md says when to use it.

Checkpoints stay what a single-process run writes: one folder with the full, unsharded weights and
torch's ordinary optimizer state (parameters numbered 0, 1, ... in the order of the param groups), so
a checkpoint written with --fsdp loads in sample.py, exports to Hugging Face, and resumes with or
without FSDP. Gathering the full state is a collective: every process takes part, rank 0 keeps it.
"""

import torch
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_optimizer_state_dict)
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from ..model.blocks import Block

# full_state_dict: unsharded tensors; cpu_offload: built in CPU memory, on rank 0 only (others get {}).
GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)


def shard_model(model: torch.nn.Module) -> None:
    """Shard every Block on its own, then the rest (embeddings, final LayerNorm, heads) at the root.

    One unit per Block is what bounds the memory: only one Block's full weights exist at a time. The
    model is changed in place; its parameters become DTensors (each holding one process's shard).
    """
    blocks = [module for module in model.modules() if isinstance(module, Block)]
    for block in blocks:
        fully_shard(block)
    fully_shard(model)


def set_gradient_sync(model, sync: bool) -> None:
    """With accumulation, reduce-scatter only after the last micro-batch (DDP's no_sync, for FSDP)."""
    model.set_requires_gradient_sync(sync)


def gather_model_state(model, tied: set[str]) -> dict[str, torch.Tensor]:
    """The full weights, on rank 0 ({} elsewhere); tied copies (GPT's lm_head.weight) dropped, as
    model_state_dict drops them for an unsharded model. Every process must call it."""
    state = get_model_state_dict(model, options=GATHER)
    return {name: tensor.contiguous() for name, tensor in state.items() if name not in tied}


def gather_optimizer_state(model, optimizer) -> dict:
    """The full optimizer state on rank 0 ({} elsewhere), numbered as optimizer.state_dict() numbers it.

    torch's distributed API names each parameter's state by its path in the model ("wte.weight");
    the ordinary optimizer state numbers parameters across the param groups in order. Both list the
    groups' parameters in the same order, so position i in that list is parameter number i.
    """
    by_name = get_optimizer_state_dict(model, optimizer, options=GATHER)
    if not by_name:
        return {}
    names = [name for group in by_name["param_groups"] for name in group["params"]]
    groups, first = [], 0
    for group in by_name["param_groups"]:
        groups.append({**group, "params": list(range(first, first + len(group["params"])))})
        first += len(group["params"])
    state = {i: by_name["state"][name] for i, name in enumerate(names) if name in by_name["state"]}
    return {"state": state, "param_groups": groups}


def load_optimizer_state(model, optimizer, numbered: dict) -> None:
    """Load an ordinary (numbered) optimizer state into the optimizer of a sharded model: each process
    takes its own slice of every moment. The inverse of gather_optimizer_state."""
    name_of = {id(p): name for name, p in model.named_parameters()}
    group_names = [[name_of[id(p)] for p in group["params"]] for group in optimizer.param_groups]
    names = [name for group in group_names for name in group]
    by_name = {
        "state": {names[i]: state for i, state in numbered["state"].items()},
        "param_groups": [{**saved, "params": group_names[j]} for j, saved in enumerate(numbered["param_groups"])],
    }
    set_optimizer_state_dict(model, optimizer, by_name, options=StateDictOptions(full_state_dict=True))


def any_nonfinite(model) -> bool:
    """Whether any process's shard of any parameter holds NaN or inf (a collective: all processes call it)."""
    # Parameters are DTensors while sharded; the root's stay gathered (whole tensors) between a forward
    # and the next backward.
    shards = [p.to_local() if isinstance(p, DTensor) else p for p in model.parameters()]
    bad = torch.zeros((), device=shards[0].device)  # NCCL reduces only tensors on the GPU
    for shard in shards:
        bad = torch.maximum(bad, (~torch.isfinite(shard)).any().float())
    torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    return bool(bad.item())


class Gathered:
    """Stands in for the model in save_checkpoint: the full weights gather_model_state collected."""

    def __init__(self, state_dict: dict[str, torch.Tensor]):
        self._state_dict = state_dict

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state_dict
