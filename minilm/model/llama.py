"""Llama: GPT-2 with four parts swapped. Every decoder in wide use today (Llama, SmolLM, Qwen2, Mistral)
is this model; docs/llama.md takes the changes one at a time.

    GPT-2                                   Llama
    LayerNorm (mean and variance)           RMSNorm: only the scale, x / rms(x) · g
    learned position vectors added to x     rotary embeddings turn q and k by position (rope.py)
    MLP: fc_out(gelu(fc_in(x)))             SwiGLU: down(silu(gate(x)) * up(x))
    n_head key/value heads                  n_kv_head < n_head: query heads share key/value heads (GQA)

and no biases anywhere. The block, the causal written-out attention, the KV cache, the loss and the
generation loop are GPT-2's, unchanged.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import LayerCache, MultiHeadAttention, build_allowed_mask
from .blocks import Block, init_weights
from .config import LlamaConfig
from .gpt import GPT
from .rope import RotaryEmbedding, apply_rotary
from .transformer import TransformerModel


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight: LayerNorm without the mean and the bias, computed in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        x32 = x.float()  # in bf16 the mean of squares would lose too many digits
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


class SwiGLU(nn.Module):
    """The gated MLP: down(silu(gate(x)) * up(x)). The gate decides, per hidden unit, how much of up(x) passes."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        C, H = config.n_embd, config.mlp_width
        self.gate_proj = nn.Linear(C, H, bias=config.bias)
        self.up_proj = nn.Linear(C, H, bias=config.bias)
        self.down_proj = nn.Linear(H, C, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        return self.dropout(self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)))


class GroupedQueryAttention(MultiHeadAttention):
    """GPT-2's causal attention with rotary positions and n_kv_head key/value heads (the cache keeps only those)."""

    def __init__(self, config: LlamaConfig):
        super().__init__(config, causal=True)
        self.n_kv_head = config.kv_heads
        kv_width = self.n_kv_head * self.head_dim
        self.k_proj = nn.Linear(config.n_embd, kv_width, bias=config.bias)
        self.v_proj = nn.Linear(config.n_embd, kv_width, bias=config.bias)

    def forward(self, x, attention_mask=None, kv_cache: LayerCache | None = None, rotary=None):
        """x: (B, T, C) -> (B, T, C). rotary: (cos, sin) of the T positions, from Llama.forward."""
        q, k, v = self._project(x, kv_cache, rotary)  # q (B, n_head, T, hd); k, v (B, n_kv_head, T_k, hd)
        if self.attn_impl == "manual":  # the written-out product needs a key/value head per query head;
            k, v = self._share(k), self._share(v)  # the fused kernel shares them itself, without copying
        return self._attend(q, k, v, attention_mask)

    @torch.no_grad()
    def attention_probs(self, x, attention_mask=None, rotary=None):
        q, k, _ = self._project(x, None, rotary)
        allowed = build_allowed_mask(x.size(1), k.size(2), self.causal, attention_mask, x.device)
        return self._attention_probs(q, self._share(k), allowed)

    def _project(self, x, kv_cache, rotary):
        q = self._split_heads(self.q_proj(x))  # (B, n_head, T, head_dim)
        k = self._split_heads(self.k_proj(x))  # (B, n_kv_head, T, head_dim)
        v = self._split_heads(self.v_proj(x))
        cos, sin = rotary
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # turned by position before caching
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)  # (B, n_kv_head, T_past + T, head_dim)
        return q, k, v

    def _share(self, t):
        """(B, n_kv_head, T, hd) -> (B, n_head, T, hd): query head h reads key/value head h // (n_head / n_kv_head)."""
        return t.repeat_interleave(self.n_head // self.n_kv_head, dim=1)


def llama_block(config: LlamaConfig) -> Block:
    """GPT-2's pre-norm block with Llama's attention, MLP and norms."""
    return Block(GroupedQueryAttention(config), SwiGLU(config), RMSNorm(config.n_embd, config.layer_norm_eps),
                 RMSNorm(config.n_embd, config.layer_norm_eps), pre_ln=True)


class Llama(GPT):
    """GPT with Llama's parts: no position table (rotary angles instead), RMSNorm, SwiGLU, GQA, an LM head
    tied to the token embedding only when the config says so. generate() is GPT's."""

    def __init__(self, config: LlamaConfig):
        TransformerModel.__init__(self)  # not GPT.__init__: Llama builds its own parts
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # token embedding; no wpe
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(llama_block(config) for _ in range(config.n_layer))
        self.ln_f = RMSNorm(config.n_embd, config.layer_norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.wte.weight

        self.apply(lambda module: init_weights(module, config.init_std))
        for block in self.blocks:  # GPT-2's depth scaling of the projections into the residual stream
            for proj in (block.attn.out_proj, block.mlp.down_proj):
                nn.init.normal_(proj.weight, mean=0.0, std=config.init_std / math.sqrt(2 * config.n_layer))

    def forward(self, input_ids, targets=None, attention_mask=None, position_ids=None, kv_cache=None,
                last_only: bool = False):
        """GPT.forward's inputs and outputs; position_ids turn q and k instead of picking position vectors."""
        B, T = input_ids.shape
        past = kv_cache.next_position if kv_cache is not None else 0
        self.check_length(past + T)
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=input_ids.device)[None]  # (1, T)
        x = self.drop(self.wte(input_ids))  # (B, T, C)
        rotary = self.rotary(position_ids, x.dtype)  # cos, sin (B or 1, T, head_dim), shared by every layer
        for block, layer_cache in zip(self.blocks, self.layer_caches(kv_cache)):
            x = block(x, attention_mask, layer_cache, rotary=rotary)
        return self.head(x, targets, last_only)  # GPT's: RMSNorm (ln_f), the LM head, the loss

    @torch.no_grad()
    def attention_maps(self, input_ids, attention_mask=None, position_ids=None) -> list[torch.Tensor]:
        """n_layer x (B, n_head, T, T), as TransformerModel.attention_maps, with the rotary angles."""
        if position_ids is None:
            position_ids = torch.arange(input_ids.size(1), device=input_ids.device)[None]
        x = self.wte(input_ids)
        rotary = self.rotary(position_ids, x.dtype)
        maps = []
        for block in self.blocks:
            maps.append(block.attention_probs(x, attention_mask, rotary=rotary))
            x = block(x, attention_mask, rotary=rotary)
        return maps
