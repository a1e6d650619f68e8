"""Exercise 7: top-p (nucleus) filtering before sampling (minilm/model/sampling.py).

Check it with `python -m exercises check top_p`.
"""

import torch  # noqa: F401
import torch.nn.functional as F  # noqa: F401


def top_p_filter(logits, top_p):
    """Keep the smallest set of most likely tokens whose probability reaches top_p; return the logits
    with every other token set to -inf. logits (B, V) -> (B, V); kept logits are unchanged.

    With the tokens sorted from most to least likely and P the softmax probabilities, token number n is
    kept when the mass of the tokens ranked ABOVE it is still below top_p:

        keep n  iff  P_1 + ... + P_{n-1} < top_p          (so the most likely token is always kept)

    Hint: torch.sort(logits, descending=True) gives the sorted values and their order; cumsum minus the
    token's own probability is the mass above it; scatter(-1, order, sorted_values) puts them back.
    """
    raise NotImplementedError("write me: sort, cumulative mass above each token, cut, unsort")
