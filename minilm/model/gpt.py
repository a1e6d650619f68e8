"""GPT-2: token + position embeddings, a stack of pre-LN causal blocks, a final LayerNorm, and an
LM head that shares its weight matrix with the token embedding."""

import math

import torch
import torch.nn as nn

from .attention import KVCache
from .blocks import init_weights, transformer_block
from .config import GPTConfig
from .generation import generate_tokens
from .losses import next_token_loss
from .transformer import TransformerModel


class GPT(TransformerModel):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # token embedding
        self.wpe = nn.Embedding(config.block_size, config.n_embd)  # learned position embedding
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(transformer_block(config, causal=True, pre_ln=True) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one matrix reads tokens in and writes them out

        self.apply(lambda module: init_weights(module, config.init_std))
        # GPT-2 scales the projections that write into the residual stream by 1/sqrt(2 * n_layer):
        # each block adds two of them, and the sum should not grow with depth.
        for block in self.blocks:
            for proj in (block.attn.out_proj, block.mlp.fc_out):
                nn.init.normal_(proj.weight, mean=0.0, std=config.init_std / math.sqrt(2 * config.n_layer))

    def forward(self, input_ids, targets=None, attention_mask=None, position_ids=None,
                kv_cache: KVCache | None = None, last_only: bool = False):
        """input_ids: (B, T) token ids. Returns logits (B, T, vocab_size) and the loss if targets are given.

        attention_mask (B, T_past + T): 1 for real tokens, 0 for padding. position_ids (B or 1, T):
        defaults to past, ..., past + T - 1 (with left padding, pass positions that start at the
        first real token). kv_cache: keys and values of earlier positions, updated in place.
        last_only: logits (B, 1, vocab_size) of the last position only, all that generation reads.
        """
        x = self.embed(input_ids, position_ids, kv_cache)  # (B, T, C)
        for block, layer_cache in zip(self.blocks, self.layer_caches(kv_cache)):
            x = block(x, attention_mask, layer_cache)
        return self.head(x, targets, last_only)

    def head(self, x, targets=None, last_only: bool = False):
        """The last hidden states (B, T, C) -> logits (B, T, vocab_size) through the final norm and the LM head,
        and the next-token loss if targets are given."""
        if last_only:  # the head is the largest matrix product of a prompt: skip the rows nobody reads
            x = x[:, -1:]  # (B, 1, C)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        loss = next_token_loss(logits, targets) if targets is not None else None
        return logits, loss

    def embed(self, input_ids, position_ids=None, kv_cache: KVCache | None = None):
        """Token embedding plus position embedding: (B, T) ids -> (B, T, C)."""
        B, T = input_ids.shape
        past = kv_cache.next_position if kv_cache is not None else 0
        self.check_length(past + T)
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=input_ids.device)[None]  # (1, T)
        return self.drop(self.wte(input_ids) + self.wpe(position_ids))

    @torch.no_grad()
    def generate(self, input_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, use_cache: bool = True, generator: torch.Generator | None = None,
                 attention_mask=None, eos_token_ids=()):
        """Extend input_ids (B, T) by up to max_new_tokens tokens: (B, T + new). temperature=0 is greedy.
        The loop is generation.py's: attention_mask for left-padded prompts, eos_token_ids to stop early."""
        new_ids = self.generate_tokens(input_ids, max_new_tokens, temperature, top_k, top_p, use_cache, generator,
                                       attention_mask, eos_token_ids)
        return torch.cat([input_ids, *new_ids], dim=1)

    def generate_tokens(self, input_ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                        top_p: float | None = None, use_cache: bool = True, generator: torch.Generator | None = None,
                        attention_mask=None, eos_token_ids=(), kv_cache: KVCache | None = None):
        """Yield each new token (B, 1) as soon as it is chosen (generation.py; kv_cache: a chat's earlier turns)."""
        return generate_tokens(self, input_ids, max_new_tokens, temperature, top_k, top_p, use_cache, generator,
                               attention_mask, tuple(eos_token_ids), kv_cache)
