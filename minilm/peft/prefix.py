"""Prefix-tuning (Li & Liang 2021): every layer's attention also attends to P learned key/value
vectors placed before the tokens, while the whole model stays frozen.

A prefix is exactly a pre-filled KV cache (minilm/model/attention.py): the keys and values of P
"virtual tokens" that each layer's attention prepends to its own. So the model code needs nothing
new; the backbone (GPT or Bert) gets

  - `prefix_encoder`, which makes the prefixes; during training through a re-parameterisation MLP
    (more stable than training the vectors directly):
        E (P, C)  ->  tanh(E W1 + b1) W2 + b2  (P, n_layer · 2 · K)  ->  (n_layer, 2, n_kv_head, P, head_dim)
    where K = n_kv_head · head_dim: C for GPT-2 and BERT; fewer for a Llama with grouped-query attention,
    whose cache holds only its n_kv_head key/value heads (each shared by n_head / n_kv_head query heads)
    After training, `precompute_prefix` evaluates the MLP once and keeps only its output table;
  - a forward pre-hook, `prepend_prefix`, that hands forward a KVCache holding the prefix (when
    no cache, or an empty one, is passed) and prepends P ones to attention_mask, so the prefix is
    never masked and padding stays masked exactly as before.

Positions: the prefix takes none. It is written into the cache's layers directly, not through
`update`, so `kv_cache.next_position` (the tokens the model has read) stays 0 and the first real
token has position 0 as in the base model. attention_mask given to the model covers the real tokens only.
With the causal mask (GPT) every token sees the whole prefix: the mask is offset by the cache length.
"""

import inspect

import torch
import torch.nn as nn

from ..model import GPT, Bert, KVCache, TransformerConfig


class PrefixEncoder(nn.Module):
    def __init__(self, config: TransformerConfig, length: int, hidden: int):
        super().__init__()
        self.length, self.n_layer, self.head_dim = length, config.n_layer, config.head_dim
        self.n_kv_head = getattr(config, "kv_heads", config.n_head)  # a Llama's GQA: fewer key/value heads
        self.embedding = nn.Embedding(length, config.n_embd)  # (P, C)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, hidden), nn.Tanh(),
                                 nn.Linear(hidden, config.n_layer * 2 * self.n_kv_head * self.head_dim))
        self.register_parameter("table", None)  # (P, n_layer · 2 · K) once precomputed

    def forward(self) -> torch.Tensor:
        """The keys and values of every layer: (n_layer, 2, n_kv_head, P, head_dim); [:, 0] keys, [:, 1] values."""
        flat = self.table if self.table is not None else self.mlp(self.embedding.weight)  # (P, n_layer·2·K)
        per_head = flat.view(self.length, self.n_layer, 2, self.n_kv_head, self.head_dim)
        return per_head.permute(1, 2, 3, 0, 4)

    @torch.no_grad()
    def precompute(self) -> None:
        """Keep the MLP's output as a table and drop the embedding and MLP (for saving and inference)."""
        if self.table is None:
            self.table = nn.Parameter(self.mlp(self.embedding.weight))
            self.embedding, self.mlp = None, None


def find_backbone(model: nn.Module) -> GPT | Bert:
    """The one GPT or Bert inside the model (or the model itself)."""
    backbones = [module for module in model.modules() if isinstance(module, (GPT, Bert))]
    if len(backbones) != 1:
        raise ValueError(f"prefix-tuning needs exactly one GPT or Bert in the model, found {len(backbones)}")
    return backbones[0]


def add_prefix(model: nn.Module, length: int, hidden: int) -> PrefixEncoder:
    backbone = find_backbone(model)
    if hasattr(backbone, "prefix_encoder"):
        raise ValueError("this model already has a prefix; apply PEFT once, to a fresh model")
    weight = next(backbone.parameters())
    backbone.prefix_encoder = PrefixEncoder(backbone.config, length, hidden).to(weight.device, weight.dtype)
    backbone.register_forward_pre_hook(prepend_prefix, with_kwargs=True)
    return backbone.prefix_encoder


def prepend_prefix(backbone: GPT | Bert, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook: put the prefix in the KV cache and extend attention_mask to cover it."""
    call = inspect.signature(backbone.forward).bind(*args, **kwargs)
    input_ids = next(iter(call.arguments.values()))  # (B, T)
    batch_size = input_ids.size(0)
    cache = call.arguments.get("kv_cache")
    if cache is None:
        cache = KVCache(backbone.config.n_layer)
    if cache.seq_len == 0:  # a new cache (also GPT.generate's): the prefix goes first
        fill_cache(cache, backbone.prefix_encoder(), batch_size)
    mask = call.arguments.get("attention_mask")
    n_prefix = cache.seq_len - cache.next_position  # the stored keys that are not tokens
    if mask is not None and n_prefix > 0:
        prefix_ones = mask.new_ones(mask.size(0), n_prefix)  # (B, P): the prefix is always visible
        call.arguments["attention_mask"] = torch.cat([prefix_ones, mask], dim=1)  # (B, P + T)
    call.arguments["kv_cache"] = cache
    return call.args, call.kwargs


def fill_cache(cache: KVCache, prefix_kv: torch.Tensor, batch_size: int) -> None:
    """prefix_kv (n_layer, 2, n_kv_head, P, head_dim) -> each layer's cache (B, n_kv_head, P, head_dim)."""
    for layer_cache, layer_kv in zip(cache.layers, prefix_kv, strict=True):
        keys, values = layer_kv[0], layer_kv[1]  # (n_kv_head, P, head_dim)
        layer_cache.keys = keys[None].expand(batch_size, -1, -1, -1)  # the same prefix for every sequence
        layer_cache.values = values[None].expand(batch_size, -1, -1, -1)


def precompute_prefix(model: nn.Module) -> None:
    """Replace the re-parameterisation MLP by its output (call after training, before saving)."""
    find_backbone(model).prefix_encoder.precompute()
