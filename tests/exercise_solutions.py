"""Reference solutions of the exercises (exercises/e01_attention.py ...), as thin wrappers over the library.

Kept in tests/, not next to the stubs, so a learner does not read the answers by accident;
tests/test_exercises.py runs every checker on these and expects every check to pass.
"""

from collections import Counter

import torch
import torch.nn as nn

from minilm.model import LlamaConfig, MultiHeadAttention, TransformerConfig
from minilm.model.attention import build_allowed_mask
from minilm.model.llama import GroupedQueryAttention, RMSNorm
from minilm.model.losses import mask_tokens as library_mask_tokens
from minilm.model.losses import next_token_loss as library_next_token_loss
from minilm.model.rope import RotaryEmbedding
from minilm.model.rope import apply_rotary as library_apply_rotary
from minilm.model.rope import rotate_half as library_rotate_half
from minilm.model.sampling import _keep_top_p
from minilm.peft.lora import LoRALinear
from tokenizer.bpe import BPETokenizer
from tokenizer.bpe_train import PairIndex


def attention(q, k, v, allowed):
    layer = MultiHeadAttention(TransformerConfig(n_embd=q.size(1) * q.size(-1), n_head=q.size(1)), causal=False)
    probs = layer._attention_probs(q, k, allowed)
    return probs @ v, probs


def allowed_mask(n_query, n_key, causal, attention_mask):
    return build_allowed_mask(n_query, n_key, causal, attention_mask, "cpu")


def pre_ln_block(x, attn, mlp, ln_attn, ln_mlp):
    x = x + attn(ln_attn(x))
    return x + mlp(ln_mlp(x))


def post_ln_block(x, attn, mlp, ln_attn, ln_mlp):
    x = ln_attn(x + attn(x))
    return ln_mlp(x + mlp(x))


def next_token_loss(logits, input_ids):
    return library_next_token_loss(logits[:, :-1], input_ids[:, 1:])


def mask_tokens(input_ids, special_mask, mask_id, vocab_size, generator):
    return library_mask_tokens(input_ids, special_mask, mask_id, vocab_size, generator=generator)


def top_p_filter(logits, top_p):
    return _keep_top_p(logits, top_p)


def count_pairs(word_counts):
    return Counter(PairIndex(word_counts).count)


def merge_pair(word, pair, new_id):
    index = PairIndex({tuple(word): 1})
    index.merge(pair, new_id)
    return [s for s in index.symbol if s is not None]


def encode_word(data, merges):
    return BPETokenizer(range(256), merges).merge_bytes(data)


def _lora(weight, bias, lora_A, lora_B, alpha, r):
    base = nn.Linear(weight.size(1), weight.size(0), bias=bias is not None)
    layer = LoRALinear(base, r, alpha, dropout=0.0)
    layer.weight, layer.bias = nn.Parameter(weight), None if bias is None else nn.Parameter(bias)
    layer.lora_A, layer.lora_B = nn.Parameter(lora_A), nn.Parameter(lora_B)
    return layer


def lora_forward(x, weight, bias, lora_A, lora_B, alpha, r):
    return _lora(weight, bias, lora_A, lora_B, alpha, r)(x)


def lora_merge(weight, lora_A, lora_B, alpha, r):
    return weight + _lora(weight, None, lora_A, lora_B, alpha, r).delta_weight()


def rotate_half(x):
    return library_rotate_half(x)


def apply_rotary(x, positions, theta=10000.0):
    cos, sin = RotaryEmbedding(x.size(-1), theta)(positions[None], x.dtype)  # (1, T, head_dim)
    return library_apply_rotary(x, cos, sin)


def rms_norm(x, weight, eps):
    norm = RMSNorm(x.size(-1), eps).to(x.dtype)
    with torch.no_grad():
        norm.weight.copy_(weight)
        return norm(x)


def _gqa(n_head, n_kv_head, head_dim):
    return GroupedQueryAttention(LlamaConfig(n_embd=n_head * head_dim, n_head=n_head, n_kv_head=n_kv_head))


def share_kv(t, n_head):
    return _gqa(n_head, t.size(1), t.size(-1))._share(t)


def grouped_query_attention(q, k, v):
    layer = _gqa(q.size(1), k.size(1), q.size(-1))
    allowed = build_allowed_mask(q.size(2), k.size(2), True, None, q.device)
    return layer._attention_probs(q, layer._share(k), allowed) @ layer._share(v)
