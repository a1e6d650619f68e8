"""Multi-head self-attention, written out step by step (docs/attention.md has the math).

    scores = q · kᵀ / √head_dim        every query against every key
    scores[masked] = -large           the causal mask (GPT) and the padding mask (both models)
    probs  = softmax(scores)          each query's weights over the keys sum to 1
    out    = probs · v                a weighted sum of the values

GPT and BERT use this same module; GPT passes causal=True.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TransformerConfig


class LayerCache:
    """The keys and values one attention layer has seen so far."""

    def __init__(self):
        self.keys: torch.Tensor | None = None  # (B, n_head, T_past, head_dim)
        self.values: torch.Tensor | None = None
        self.n_tokens = 0  # how many tokens update has appended: the positions used so far

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's k, v (B, n_head, T, head_dim) and return all keys and values so far."""
        self.n_tokens += k.size(2)
        if self.keys is not None:
            k = torch.cat([self.keys, k], dim=2)
            v = torch.cat([self.values, v], dim=2)
        self.keys, self.values = k, v
        return k, v


class KVCache:
    """Keys and values of the tokens seen so far, one LayerCache per layer, for incremental decoding.

    Without a cache, generating token t+1 recomputes k and v for all t previous tokens; with it,
    each step computes k, v for the new token only and attends over the stored ones.
    """

    def __init__(self, n_layer: int):
        self.layers = [LayerCache() for _ in range(n_layer)]

    @property
    def seq_len(self) -> int:
        """How many keys are stored: the length the padding mask must cover."""
        keys = self.layers[0].keys
        return 0 if keys is None else keys.size(2)

    @property
    def next_position(self) -> int:
        """The position index of the next token: the tokens seen so far. (Keys placed in the cache
        directly, like prefix-tuning's learned ones, are attended to but take no position.)"""
        return self.layers[0].n_tokens

    def crop(self, n_tokens: int) -> None:
        """Keep the first n_tokens and forget the rest: a conversation that changed after them (a chat reuses
        the cache of its earlier turns). Only for a cache that update() alone filled."""
        if self.seq_len != self.next_position:
            raise ValueError("crop() counts tokens from the first key; this cache holds keys placed directly")
        for layer in self.layers:
            if layer.keys is not None:
                layer.keys, layer.values = layer.keys[:, :, :n_tokens], layer.values[:, :, :n_tokens]
            layer.n_tokens = min(layer.n_tokens, n_tokens)


def build_allowed_mask(n_query: int, n_key: int, causal: bool, attention_mask: torch.Tensor | None,
                       device) -> torch.Tensor | None:
    """Which keys each query may attend to: `allowed`, bool (B or 1, 1, n_query, n_key), True = may; None = all.

    The queries are the last n_query of the n_key positions (earlier ones come from a KV cache), so
    with the causal mask query i, at absolute position n_key - n_query + i, sees keys 0 ... that position.
    attention_mask is the padding mask: (B, n_key), 1/True for real tokens and 0/False for padding.
    """
    allowed = None
    if causal and n_query > 1:  # a lone query (a decoding step) is the newest position: it sees every key
        past = n_key - n_query
        allowed = torch.ones(n_query, n_key, dtype=torch.bool, device=device).tril(diagonal=past)
        allowed = allowed[None, None]  # (1, 1, n_query, n_key)
    if attention_mask is not None:
        if attention_mask.shape[-1] != n_key:
            raise ValueError(f"attention_mask covers {attention_mask.shape[-1]} positions but there are "
                             f"{n_key} keys (cached + new); pass a mask for every position")
        keys_allowed = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, n_key)
        allowed = keys_allowed if allowed is None else allowed & keys_allowed
    return allowed


class MultiHeadAttention(nn.Module):
    def __init__(self, config: TransformerConfig, causal: bool):
        super().__init__()
        C, bias = config.n_embd, config.bias
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.causal = causal
        self.attn_impl = config.attn_impl  # "manual": the lines below; "sdpa": torch's fused kernel
        self.q_proj = nn.Linear(C, C, bias=bias)
        self.k_proj = nn.Linear(C, C, bias=bias)
        self.v_proj = nn.Linear(C, C, bias=bias)
        self.out_proj = nn.Linear(C, C, bias=bias)
        self.attn_dropout = nn.Dropout(config.attn_dropout)  # on the attention probabilities
        self.resid_dropout = nn.Dropout(config.dropout)  # on the output, before the residual sum

    def forward(self, x, attention_mask=None, kv_cache: LayerCache | None = None):
        """x: (B, T, C) -> (B, T, C). attention_mask: (B, T_past + T) padding mask; kv_cache: this layer's."""
        q, k, v = self._project(x, kv_cache)  # q (B, n_head, T, head_dim); k, v (B, n_head, T_k, head_dim)
        return self._attend(q, k, v, attention_mask)

    @torch.no_grad()
    def attention_probs(self, x, attention_mask=None):
        """The attention probabilities forward computes on x, for looking at: (B, n_head, T, T).
        Always the written-out path, whichever attn_impl the model runs."""
        q, k, _ = self._project(x, None)
        allowed = build_allowed_mask(x.size(1), k.size(2), self.causal, attention_mask, x.device)
        return self._attention_probs(q, k, allowed)

    def _project(self, x, kv_cache):
        q = self._split_heads(self.q_proj(x))  # (B, n_head, T, head_dim)
        k = self._split_heads(self.k_proj(x))
        v = self._split_heads(self.v_proj(x))
        if kv_cache is not None:
            k, v = kv_cache.update(k, v)  # (B, n_head, T_past + T, head_dim)
        return q, k, v

    def _split_heads(self, t):
        B, T, width = t.shape  # width = n_heads * head_dim
        return t.view(B, T, width // self.head_dim, self.head_dim).transpose(1, 2)  # (B, n_heads, T, head_dim)

    def _attend(self, q, k, v, attention_mask):
        """Every query against the keys it may see, then out_proj: q (B, n_head, T, head_dim) -> (B, T, C)."""
        B, _, T, _ = q.shape
        allowed = build_allowed_mask(T, k.size(2), self.causal, attention_mask, q.device)

        if self.attn_impl == "sdpa":
            y = self._fused_attention(q, k, v, allowed, attention_mask)
        else:
            y = self._manual_attention(q, k, v, allowed)

        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)  # heads side by side again: (B, T, C)
        return self.resid_dropout(self.out_proj(y))

    def _manual_attention(self, q, k, v, allowed):
        attn_probs = self._attention_probs(q, k, allowed)  # (B, n_head, T, T_k)
        return self.attn_dropout(attn_probs) @ v  # a weighted sum of the values: (B, n_head, T, head_dim)

    def _attention_probs(self, q, k, allowed):
        attn_scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, n_head, T, T_k)
        if allowed is not None:
            # The most negative finite number rather than -inf, so that a row with every key masked
            # (a padding query under the causal mask) gives no NaN.
            attn_scores = attn_scores.masked_fill(~allowed, torch.finfo(attn_scores.dtype).min)
        attn_probs = F.softmax(attn_scores, dim=-1)  # each row sums to 1 over the keys
        if allowed is not None:
            # Masked keys get exactly zero weight, and a query with no allowed key outputs zeros
            # (what the fused kernel does too).
            attn_probs = attn_probs.masked_fill(~allowed, 0.0)
        return attn_probs

    def _fused_attention(self, q, k, v, allowed, attention_mask):
        dropout_p = self.attn_dropout.p if self.training else 0.0
        gqa = k.size(1) < q.size(1)  # fewer key/value heads than query heads (Llama's GQA): the kernel shares them
        if allowed is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, enable_gqa=gqa)
        if self.causal and attention_mask is None and q.size(2) == k.size(2):
            # Plain causal attention: let the kernel build the mask (it can skip masked blocks).
            # (Not when there is a padding mask, even with batch size 1: is_causal would drop it.)
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True, enable_gqa=gqa)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p, enable_gqa=gqa)
