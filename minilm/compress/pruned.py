"""A pruned model on disk: which heads each layer kept, and rebuilding that shape before loading.

minilm/model/ knows nothing of pruning: its attention always has config.n_head heads. A pruned layer's
attention is the same module with smaller q, k, v and out_proj (heads.py takes the rows out), so a
checkpoint of a pruned model records one number per layer beside the model's config,

    config.json  "model": {..., "n_head": 4, "heads_per_layer": [2, 4, 0]}

and the loaders rebuild a plain model, then give each layer that many heads (empty ones, which the
checkpoint's weights then fill). Each head keeps its head_dim = n_embd / n_head.
"""

import torch.nn as nn

from .heads import transformer_of

HEADS_PER_LAYER = "heads_per_layer"  # the key in config.json's model settings


def model_record(model: nn.Module) -> dict:
    """The model's config as config.json stores it: its fields, and the heads per layer if it was pruned."""
    transformer = transformer_of(model)
    record = transformer.config.to_dict()
    kept = [block.attn.n_head for block in transformer.blocks]
    if any(count != transformer.config.n_head for count in kept):
        record[HEADS_PER_LAYER] = kept
    return record


def build_model(model_cls, config_cls, record: dict) -> nn.Module:
    """model_cls built from config.json's model settings, in the pruned shape they record (weights not loaded).
    A ValueError names a setting that does not fit."""
    settings = dict(record)
    heads_per_layer = settings.pop(HEADS_PER_LAYER, None)
    model = model_cls(config_cls.from_dict(settings))
    if heads_per_layer is not None:
        give_heads(transformer_of(model), heads_per_layer)
    return model


def give_heads(transformer: nn.Module, heads_per_layer: list[int]) -> None:
    """Shrink each layer's attention to heads_per_layer[layer] heads (new, uninitialised weights)."""
    config = transformer.config
    check_heads_per_layer(heads_per_layer, config)
    for block, count in zip(transformer.blocks, heads_per_layer):
        attn = block.attn
        width = count * attn.head_dim  # the kept heads side by side
        attn.q_proj, attn.k_proj, attn.v_proj = (nn.Linear(config.n_embd, width, bias=config.bias) for _ in range(3))
        attn.out_proj = nn.Linear(width, config.n_embd, bias=config.bias)
        attn.n_head = count


def check_heads_per_layer(counts, config) -> None:
    """One head count per layer, each between 0 and n_head; a model sharing one block (ALBERT) cannot be pruned."""
    if not isinstance(counts, (list, tuple)) or len(counts) != config.n_layer:
        raise ValueError(f"heads_per_layer must list one head count per layer ({config.n_layer} numbers), "
                         f"got {counts!r}")
    for layer, count in enumerate(counts):
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= config.n_head:
            raise ValueError(f"heads_per_layer[{layer}] is {count!r}: a layer keeps between 0 and n_head "
                             f"({config.n_head}) of its heads")
    if getattr(config, "share_layers", False):
        raise ValueError("heads_per_layer prunes each layer's heads separately, but share_layers uses one block "
                         "at every layer: prune an unshared model")
