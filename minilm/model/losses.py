"""Training objectives: next-token prediction (GPT), masked-LM and next-sentence prediction (BERT),
replaced-token detection (ELECTRA).

docs/losses.md has the formulas. Positions whose label is IGNORE_INDEX do not count in a loss.
"""

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # PyTorch's cross_entropy default


def next_token_loss(logits, targets):
    """Mean cross-entropy of predicting targets[b, t] from logits[b, t]. logits (B, T, V), targets (B, T).

    targets are the inputs shifted left by one (the data loader builds them), so position t is
    scored on the token that follows it.
    """
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)


def mlm_loss(mlm_logits, mlm_labels):
    """Cross-entropy over the masked positions only.

    mlm_logits is either (B, T, V) for every position, or (N, V) for just the N positions whose
    label is not IGNORE_INDEX (what BertForPreTraining computes during training, to save work).
    """
    if mlm_logits.dim() == 3:
        return F.cross_entropy(mlm_logits.flatten(0, 1), mlm_labels.flatten(), ignore_index=IGNORE_INDEX)
    return F.cross_entropy(mlm_logits, mlm_labels[mlm_labels != IGNORE_INDEX])


def nsp_loss(nsp_logits, nsp_labels):
    """nsp_logits (B, 2); label 0 means sentence B really follows A, 1 means B is a random sentence."""
    return F.cross_entropy(nsp_logits, nsp_labels)


def replaced_token_labels(original_ids, corrupted_ids):
    """ELECTRA's discriminator targets (B, T): 1 where the input differs from the original text, else 0.

    A position the generator filled with the original token counts as original (0), as in the paper:
    the discriminator cannot be asked to find a replacement that changed nothing.
    """
    return (corrupted_ids != original_ids).long()


def rtd_loss(rtd_logits, rtd_labels, attention_mask):
    """Replaced-token detection: binary cross-entropy of "replaced" over every real (non-padding) token.

    rtd_logits (B, T), one logit a token; rtd_labels (B, T) from replaced_token_labels; attention_mask (B, T).
    Unlike masked-LM, every token teaches something, which is ELECTRA's point.
    """
    real = attention_mask.bool()
    return F.binary_cross_entropy_with_logits(rtd_logits[real], rtd_labels[real].float())


def mask_tokens(input_ids, special_mask, mask_id: int, vocab_size: int, mlm_prob: float = 0.15,
                generator: torch.Generator | None = None):
    """BERT's masking: returns (masked_input_ids, mlm_labels).

    Of the positions where special_mask is False (not [CLS], [SEP] or padding), each is chosen with
    probability mlm_prob. Of the chosen: 80% become [MASK], 10% a random token, 10% stay as they are.
    Labels hold the original token at chosen positions and IGNORE_INDEX everywhere else.
    """
    def uniform(shape):
        return torch.rand(shape, generator=generator, device=input_ids.device)

    chosen = (uniform(input_ids.shape) < mlm_prob) & ~special_mask
    labels = torch.where(chosen, input_ids, IGNORE_INDEX)

    roll = uniform(input_ids.shape)  # one draw decides which of the three fates a chosen token gets
    to_mask = chosen & (roll < 0.8)
    to_random = chosen & (roll >= 0.8) & (roll < 0.9)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=input_ids.device)

    masked = input_ids.clone()
    masked[to_mask] = mask_id
    masked[to_random] = random_ids[to_random]
    return masked, labels
