"""Choosing the next token from the model's logits: greedy, temperature, top-k and top-p (nucleus)."""

import math

import torch
import torch.nn.functional as F

# float32's smallest normal number, 1.2e-38. Sampling runs in float32, where a smaller temperature or top_p
# turns into 0 or loses its precision (1e-200 becomes 0, and 0 / 0 is nan); both settings approach greedy
# as they approach 0, so below this they mean greedy. One rule for sample.py, the service and any caller.
GREEDY_BELOW = torch.finfo(torch.float32).tiny


def sampling_problem(temperature: float, top_k: int | None = None, top_p: float | None = None) -> str | None:
    """What is wrong with these settings, starting with the setting's name (a caller adds its own "--" or
    field), or None. nan and inf are refused; tiny positive numbers are fine (they mean greedy)."""
    if not 0 <= temperature < math.inf:  # also refuses nan
        return f"temperature must be a number >= 0 (0 is greedy), got {temperature}"
    if top_p is not None and not 0 < top_p <= 1:
        return f"top_p must be in (0, 1], got {top_p}"
    if top_k is not None and top_k < 1:
        return f"top_k must be a positive integer, got {top_k}"
    return None


def is_greedy(temperature: float, top_p: float | None = None) -> bool:
    """Temperature 0 (or one too small for float32), or a nucleus too small to hold more than the best token."""
    return temperature < GREEDY_BELOW or (top_p is not None and top_p < GREEDY_BELOW)


def sample_next_token(logits, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None):
    """logits: (B, vocab) for the last position. Returns the chosen ids, (B, 1).

    Greedy (argmax) when is_greedy; otherwise logits are divided by the temperature (below 1 sharpens,
    above 1 flattens), cut to the top_k most likely tokens and/or the smallest set whose probability
    reaches top_p, then sampled.
    """
    problem = sampling_problem(temperature, top_k, top_p)
    if problem:
        raise ValueError(problem)
    if is_greedy(temperature, top_p):
        return logits.argmax(dim=-1, keepdim=True)
    # In float32 whatever the model computed in (GREEDY_BELOW is float32's). Subtract the row's maximum before
    # dividing: the best token's score becomes exactly 0 and the others negative, so a tiny temperature
    # (1e-37) sends them to -inf instead of overflowing into inf - inf = nan.
    logits = logits.float()
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature  # (B, vocab)
    if top_k is not None:
        kth_best = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, [-1]]  # (B, 1)
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p is not None:
        logits = _keep_top_p(logits, top_p)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def _keep_top_p(logits, top_p: float):
    """Keep the most likely tokens until their probabilities add up to top_p (always at least one)."""
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    sorted_probs = F.softmax(sorted_logits, dim=-1)
    prob_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above each
    drop = prob_before >= top_p
    drop[:, 0] = False  # the likeliest token stays, whatever rounding does to the sums
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
