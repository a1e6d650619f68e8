"""Losses: next-token cross-entropy, MLM masking statistics and loss, NSP, replaced-token detection."""

import math

import pytest
import torch
import torch.nn.functional as F

from minilm.model.losses import (IGNORE_INDEX, mask_tokens, mlm_loss, next_token_loss, nsp_loss, replaced_token_labels,
                                 rtd_loss)

PAD, CLS, SEP, MASK = 0, 1, 2, 3
VOCAB = 1000
N_SIGMA = 4  # binomial tolerance; the generator seed is fixed, so the test is deterministic


def sentence_batch(B=512, T=128, seed=0):
    """[CLS] tokens [SEP] [PAD]...: ordinary ids in [4, VOCAB), random lengths."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, VOCAB, (B, T), generator=generator)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=generator)
    positions = torch.arange(T)[None]
    ids[:, 0] = CLS
    ids[positions == (lengths[:, None] - 1)] = SEP
    ids[positions >= lengths[:, None]] = PAD
    special_mask = (ids == PAD) | (ids == CLS) | (ids == SEP)
    return ids, special_mask


def masked_batch(seed=0):
    ids, special_mask = sentence_batch()
    masked, labels = mask_tokens(ids, special_mask, MASK, VOCAB, generator=torch.Generator().manual_seed(seed))
    return ids, special_mask, masked, labels


def assert_binomial(count, n, p):
    assert abs(count - n * p) < N_SIGMA * math.sqrt(n * p * (1 - p)), (count, n * p)


def test_about_15_percent_of_ordinary_tokens_are_chosen():
    _, special_mask, _, labels = masked_batch()
    n_ordinary = (~special_mask).sum().item()
    assert_binomial((labels != IGNORE_INDEX).sum().item(), n_ordinary, 0.15)


def test_chosen_tokens_split_80_mask_10_random_10_unchanged():
    ids, _, masked, labels = masked_batch()
    chosen = labels != IGNORE_INDEX
    n = chosen.sum().item()
    became_mask = (masked[chosen] == MASK).sum().item()
    unchanged = (masked[chosen] == ids[chosen]).sum().item()
    became_other = n - became_mask - unchanged
    # A random replacement lands on [MASK] or on the original token with probability 1/VOCAB each.
    assert_binomial(became_mask, n, 0.8 + 0.1 / VOCAB)
    assert_binomial(unchanged, n, 0.1 + 0.1 / VOCAB)
    assert_binomial(became_other, n, 0.1 * (VOCAB - 2) / VOCAB)


def test_special_tokens_and_padding_are_never_chosen_or_changed():
    ids, special_mask, masked, labels = masked_batch()
    assert (labels[special_mask] == IGNORE_INDEX).all()
    assert torch.equal(masked[special_mask], ids[special_mask])


def test_labels_hold_the_original_token_at_chosen_positions():
    ids, _, _, labels = masked_batch()
    chosen = labels != IGNORE_INDEX
    assert torch.equal(labels[chosen], ids[chosen])


def test_positions_not_chosen_keep_their_token():
    ids, _, masked, labels = masked_batch()
    not_chosen = labels == IGNORE_INDEX
    assert torch.equal(masked[not_chosen], ids[not_chosen])


def test_same_generator_seed_gives_the_same_masking():
    _, _, masked_a, labels_a = masked_batch(seed=7)
    _, _, masked_b, labels_b = masked_batch(seed=7)
    _, _, masked_c, _ = masked_batch(seed=8)
    assert torch.equal(masked_a, masked_b) and torch.equal(labels_a, labels_b)
    assert not torch.equal(masked_a, masked_c)


def test_next_token_loss_is_the_mean_negative_log_probability_of_the_targets():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 5, 11), torch.randint(11, (2, 5))
    log_probs = logits.log_softmax(-1)
    by_hand = -sum(log_probs[b, t, targets[b, t]] for b in range(2) for t in range(5)) / 10
    torch.testing.assert_close(next_token_loss(logits, targets), by_hand)


def test_next_token_loss_ignores_positions_labelled_ignore_index():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 5, 11), torch.randint(11, (2, 5))
    targets[:, 3:] = IGNORE_INDEX
    torch.testing.assert_close(next_token_loss(logits, targets), next_token_loss(logits[:, :3], targets[:, :3]))


def test_mlm_loss_is_the_same_from_all_positions_or_only_the_labelled_ones():
    torch.manual_seed(0)
    logits = torch.randn(3, 8, 13)
    labels = torch.full((3, 8), IGNORE_INDEX)
    labelled = torch.rand(3, 8) < 0.3
    labels[labelled] = torch.randint(13, (3, 8))[labelled]
    from_all = mlm_loss(logits, labels)
    torch.testing.assert_close(mlm_loss(logits[labelled], labels), from_all)
    torch.testing.assert_close(from_all, F.cross_entropy(logits[labelled], labels[labelled]))


def test_nsp_loss_is_near_zero_for_confident_correct_logits_and_large_for_wrong_ones():
    labels = torch.tensor([0, 1])
    confident = torch.tensor([[10.0, -10.0], [-10.0, 10.0]])
    assert nsp_loss(confident, labels).item() == pytest.approx(0.0, abs=1e-6)
    assert nsp_loss(-confident, labels).item() == pytest.approx(20.0, abs=1e-3)


def test_a_replacement_equal_to_the_original_token_is_labelled_original():
    original = torch.tensor([[5, 6, 7, 8]])
    corrupted = torch.tensor([[5, 9, 7, 8]])  # position 1 replaced; position 2 "replaced" by itself
    assert replaced_token_labels(original, corrupted).tolist() == [[0, 1, 0, 0]]


def test_rtd_loss_is_the_mean_binary_cross_entropy_over_real_tokens_only():
    logits = torch.tensor([[2.0, -1.0, 0.5, 9.0]])
    labels = torch.tensor([[1, 0, 1, 1]])
    mask = torch.tensor([[1, 1, 1, 0]])  # the last position is padding: its wrong-looking logit must not count
    p = torch.sigmoid(logits[0, :3])
    expected = -(torch.log(p[0]) + torch.log(1 - p[1]) + torch.log(p[2])) / 3
    torch.testing.assert_close(rtd_loss(logits, labels, mask), expected)
