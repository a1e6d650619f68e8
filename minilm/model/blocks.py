"""The MLP and the Transformer block that GPT and BERT share.

A block is attention then an MLP, each wrapped in a residual connection and a LayerNorm. The two
models differ only in where the LayerNorm sits (docs/blocks.md):

    pre-LN  (GPT-2):  x = x + attn(ln_attn(x));   x = x + mlp(ln_mlp(x))
    post-LN (BERT):   x = ln_attn(x + attn(x));   x = ln_mlp(x + mlp(x))
"""

import torch.nn as nn

from .attention import MultiHeadAttention
from .config import TransformerConfig


class MLP(nn.Module):
    """Position-wise feed-forward: widen (n_embd -> mlp_width), GELU, narrow back."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.fc_in = nn.Linear(config.n_embd, config.mlp_width, bias=config.bias)
        # GPT-2 was trained with GELU's tanh approximation, BERT with the exact erf form.
        self.gelu = nn.GELU(approximate=config.gelu_approximate)
        self.fc_out = nn.Linear(config.mlp_width, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        return self.dropout(self.fc_out(self.gelu(self.fc_in(x))))


class Block(nn.Module):
    def __init__(self, config: TransformerConfig, causal: bool, pre_ln: bool, layer: int = 0):
        super().__init__()
        self.pre_ln = pre_ln
        self.attn = MultiHeadAttention(config, causal, layer)  # layer: which entry of heads_per_layer is ours
        self.ln_attn = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)
        self.ln_mlp = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)

    def forward(self, x, attention_mask=None, kv_cache=None, layer: int = 0):
        """x: (B, T, C) -> (B, T, C). attention_mask: (B, T_past + T) padding mask."""
        if self.pre_ln:
            x = x + self.attn(self.ln_attn(x), attention_mask, kv_cache, layer)
            x = x + self.mlp(self.ln_mlp(x))
        else:
            x = self.ln_attn(x + self.attn(x, attention_mask, kv_cache, layer))
            x = self.ln_mlp(x + self.mlp(x))
        return x

    def attention_probs(self, x, attention_mask=None):
        """What this block's attention computes on x: (B, n_head, T, T), for looking at."""
        return self.attn.attention_probs(self.ln_attn(x) if self.pre_ln else x, attention_mask)


def init_weights(module: nn.Module, std: float) -> None:
    """The GPT-2 / BERT initialisation: weights ~ N(0, std), biases (if any) 0, LayerNorm the identity."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
