"""Exercise 6: BERT's masking for the masked-LM objective, 15% then 80/10/10 (docs/losses.md).

Check it with `python -m exercises check mlm_masking`.
"""

import torch  # noqa: F401

IGNORE_INDEX = -100  # a label that cross-entropy skips


def mask_tokens(input_ids, special_mask, mask_id, vocab_size, generator):
    """Return (masked_input_ids, labels), both (B, T) like input_ids. Do not change input_ids itself.

    special_mask  (B, T) bool, True at [CLS], [SEP] and padding: these are never chosen
    mask_id       the id of [MASK];  vocab_size: random tokens are drawn from 0 .. vocab_size-1
    generator     a torch.Generator: pass it to every torch.rand / torch.randint, so a seed repeats the result

    1. choose each non-special position with probability 0.15
    2. of the chosen: 80% become mask_id, 10% a random token, 10% stay as they are
    3. labels = the original token at chosen positions, IGNORE_INDEX everywhere else

    Hint: one uniform draw per position decides whether it is chosen (u < 0.15); a second one, r, decides
    its fate: r < 0.8 [MASK], 0.8 <= r < 0.9 random, else unchanged. torch.where(cond, a, b) and
    tensor.clone() help.
    """
    raise NotImplementedError("write me: choose 15%, then 80/10/10, and the labels")
