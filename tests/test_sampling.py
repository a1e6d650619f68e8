"""sample_next_token: greedy, top-k, top-p, the sampled distribution, argument errors."""

import math

import pytest
import torch

from minilm.model.sampling import sample_next_token

# Probabilities 1/2, 1/4, 1/8, 1/16, 1/16 (exact in binary, so cumulative sums are exact too).
PROBS = torch.tensor([[0.0625, 0.25, 0.5, 0.0625, 0.125]])
LOGITS = PROBS.log()  # token ranks: 2, 1, 4, then 0 and 3


def draw(logits, n=4000, seed=0, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([sample_next_token(logits, generator=generator, **kwargs) for _ in range(n)]).flatten()


def test_temperature_zero_is_argmax():
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_next_token(logits, temperature=0), logits.argmax(-1, keepdim=True))


def test_output_shape_is_batch_by_one():
    assert sample_next_token(torch.randn(3, 10)).shape == (3, 1)


def test_top_k_one_is_argmax():
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0))
    for seed in range(5):
        chosen = sample_next_token(logits, temperature=1.5, top_k=1, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(chosen, logits.argmax(-1, keepdim=True))


def test_top_k_samples_only_the_k_most_likely_tokens():
    assert set(draw(LOGITS, n=500, top_k=2).tolist()) == {2, 1}


@pytest.mark.parametrize("top_p, kept", [
    (0.5, {2}),            # 1/2 alone reaches 0.5
    (0.6, {2, 1}),         # needs 1/2 + 1/4
    (0.75, {2, 1}),        # 1/2 + 1/4 reaches 0.75 exactly
    (0.8, {2, 1, 4}),
    (1.0, {2, 1, 4, 0, 3}),
])
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, kept):
    assert set(draw(LOGITS, n=1000, top_p=top_p).tolist()) == kept


def test_top_p_renormalises_the_kept_probabilities():
    samples = draw(LOGITS, n=4000, top_p=0.75)  # keeps 1/2 and 1/4: renormalised to 2/3 and 1/3
    n_best = (samples == 2).sum().item()
    assert abs(n_best - 4000 * 2 / 3) < 4 * math.sqrt(4000 * 2 / 3 * 1 / 3)


def test_samples_follow_the_softmax_probabilities():
    samples = draw(LOGITS, n=4000)
    for token, p in enumerate(PROBS[0].tolist()):
        count = (samples == token).sum().item()
        assert abs(count - 4000 * p) < 4 * math.sqrt(4000 * p * (1 - p)), (token, count)


def test_low_temperature_concentrates_on_the_most_likely_token():
    samples = draw(LOGITS, n=500, temperature=0.1)  # p(best) = 1 / (1 + 2^-10 + ...) > 0.99
    assert (samples == 2).sum().item() >= 490


def test_a_vanishing_temperature_picks_the_most_likely_token_without_nan():
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0)) * 30
    picked = sample_next_token(logits, temperature=1e-40, generator=torch.Generator().manual_seed(0))
    assert torch.equal(picked, logits.argmax(-1, keepdim=True))


def test_same_generator_seed_gives_the_same_samples():
    assert torch.equal(draw(LOGITS, n=50, seed=3), draw(LOGITS, n=50, seed=3))


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-0.5), "temperature must be a number >= 0"),
    (dict(temperature=float("nan")), "temperature must be a number >= 0"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(top_k=0), "top_k must be a positive integer"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_next_token(LOGITS, **kwargs)
