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
    """One layer: attention and an MLP, each with its norm and residual connection. The parts come
    from the model (GPT-2 and BERT: MultiHeadAttention, MLP, LayerNorm; Llama swaps in its own)."""

    def __init__(self, attn: nn.Module, mlp: nn.Module, ln_attn: nn.Module, ln_mlp: nn.Module, pre_ln: bool):
        super().__init__()
        self.pre_ln = pre_ln
        self.attn = attn
        self.ln_attn = ln_attn
        self.mlp = mlp
        self.ln_mlp = ln_mlp

    def forward(self, x, attention_mask=None, kv_cache=None, **attention_inputs):
        """x: (B, T, C) -> (B, T, C). attention_mask: (B, T_past + T) padding mask; kv_cache: this layer's.
        attention_inputs: anything else the attention takes (Llama's rotary angles)."""
        if self.pre_ln:
            x = x + self.attn(self.ln_attn(x), attention_mask, kv_cache, **attention_inputs)
            x = x + self.mlp(self.ln_mlp(x))
        else:
            x = self.ln_attn(x + self.attn(x, attention_mask, kv_cache, **attention_inputs))
            x = self.ln_mlp(x + self.mlp(x))
        return x

    def attention_probs(self, x, attention_mask=None, **attention_inputs):
        """What this block's attention computes on x: (B, n_head, T, T), for looking at."""
        return self.attn.attention_probs(self.ln_attn(x) if self.pre_ln else x, attention_mask, **attention_inputs)


def transformer_block(config: TransformerConfig, causal: bool, pre_ln: bool) -> Block:
    """GPT-2's block (causal, pre-LN) or BERT's (bidirectional, post-LN): the same parts, arranged two ways."""
    def layer_norm():
        return nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
    return Block(MultiHeadAttention(config, causal), MLP(config), layer_norm(), layer_norm(), pre_ln)


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
