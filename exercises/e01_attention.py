"""Exercise 1: scaled dot-product attention, one head at a time (docs/attention.md).

Check it with `python -m exercises check attention`.
"""

import math  # noqa: F401  (you will want math.sqrt)

import torch  # noqa: F401


def attention(q, k, v, allowed):
    """Attend each query over the keys; return (out, probs).

    q        (B, H, T, d)      the queries
    k, v     (B, H, T_k, d)    the keys and values
    allowed  bool, broadcastable to (B, H, T, T_k), True where query i may look at key j; or None (all may)

    out      (B, H, T, d)      Σ_j P_ij v_j
    probs    (B, H, T, T_k)    P, each row sums to 1 over the allowed keys

        S = q kᵀ / √d
        S_ij = torch.finfo(S.dtype).min    where key j is not allowed for query i
        P = softmax(S) over the keys (the last axis)
        P_ij = 0                           where key j is not allowed (a row with no allowed key is all 0)
        out = P v

    Hint: k.transpose(-2, -1) turns (.., T_k, d) into (.., d, T_k); tensor.masked_fill(~allowed, value)
    writes value where allowed is False. Why the smallest finite number and not -inf: see docs/attention.md.
    """
    raise NotImplementedError("write me: scores, scale, mask, softmax, weighted sum")
