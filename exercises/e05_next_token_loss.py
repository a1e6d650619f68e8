"""Exercise 5: the next-token (language-modelling) loss, with the shift done by you (docs/losses.md).

Check it with `python -m exercises check next_token_loss`.
"""

import torch  # noqa: F401
import torch.nn.functional as F  # noqa: F401


def next_token_loss(logits, input_ids):
    """Mean cross-entropy of predicting each next token. Returns a scalar tensor.

    logits     (B, T, V)   the model's output at each position of input_ids
    input_ids  (B, T)      the tokens the model read

    Position t is scored on the token that FOLLOWS it, input_ids[:, t + 1], so the last position has no
    target and the first token is never predicted:

        L = mean over b and t < T-1 of  -log softmax(logits[b, t])[input_ids[b, t + 1]]

    Hint: logits[:, :-1] pairs with input_ids[:, 1:]; F.cross_entropy wants (N, V) and (N,), so flatten
    (tensor.flatten(0, 1), or .reshape(-1, V)).
    """
    raise NotImplementedError("write me: shift by one, flatten, cross-entropy")
