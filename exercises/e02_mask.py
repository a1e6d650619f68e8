"""Exercise 2: which keys each query may see, the causal mask and the padding mask (docs/attention.md).

Check it with `python -m exercises check mask`.
"""

import torch  # noqa: F401


def allowed_mask(n_query, n_key, causal, attention_mask):
    """Build `allowed`, bool (B or 1, 1, n_query, n_key): True where query i may attend to key j.

    n_query   how many new tokens (queries); they are the LAST n_query of the n_key positions (the
              earlier n_key - n_query keys come from a KV cache)
    causal    True for GPT: query i, at absolute position p_i = (n_key - n_query) + i, sees keys j <= p_i
    attention_mask  None, or (B, n_key) with 1/True for real tokens and 0/False for padding: a padding
              KEY is never allowed (padding queries are not masked)

    Return None when nothing is masked (causal False and no attention_mask); with both, AND them:
        allowed = causal (1, 1, n_query, n_key)  &  padding (B, 1, 1, n_key)

    Hint: torch.ones(n_query, n_key, dtype=torch.bool).tril(diagonal=past) keeps j <= i + past;
    x[None, None] adds two leading axes, mask.bool()[:, None, None, :] puts the keys on the last one.
    """
    raise NotImplementedError("write me: the causal triangle shifted by the cache, AND the padding keys")
