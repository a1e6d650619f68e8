"""Exercise 12: grouped-query attention, GQA: query heads share key/value heads (docs/llama.md).

Check it with `python -m exercises check gqa`.
"""

import math  # noqa: F401

import torch  # noqa: F401


def share_kv(t, n_head):
    """Give each of the n_head query heads its key/value head. t (B, n_kv_head, T, d) -> (B, n_head, T, d).

    n_kv_head divides n_head; each key/value head serves group = n_head // n_kv_head query heads, and they
    are CONSECUTIVE: query heads 0 ... group-1 read key/value head 0, the next group head 1, and so on:

        out[:, h] = t[:, h // group]

    (A trained checkpoint fixes this order: its q_proj rows for head h were learned against k_proj's rows
    of head h // group.)

    Hint: t.repeat_interleave(group, dim=1) copies each head group times in place; t.repeat(1, group, 1, 1)
    tiles the whole stack instead, which gives head h the key/value head h % n_kv_head.
    """
    raise NotImplementedError("write me: copy each key/value head for its group of query heads")


def grouped_query_attention(q, k, v):
    """Causal attention with shared key/value heads. q (B, n_head, T, d); k, v (B, n_kv_head, T, d).

    Returns out (B, n_head, T, d). Every query head keeps its own queries; only the keys and values are
    shared (that is what shrinks the KV cache: it stores n_kv_head heads, not n_head):

        k, v   = share_kv(k, n_head), share_kv(v, n_head)
        S      = q kᵀ / √d, with key j > query i masked (causal; use torch.finfo(S.dtype).min)
        out    = softmax(S over the keys) v

    Hint: exercise 1 wrote the attention itself; torch.ones(T, T, dtype=torch.bool).tril() is the causal mask.
    """
    raise NotImplementedError("write me: share the keys and values, then causal attention")
