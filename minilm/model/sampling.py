"""Choosing the next token from the model's logits: greedy, temperature, top-k and top-p (nucleus)."""

import torch
import torch.nn.functional as F


def sample_next_token(logits, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None):
    """logits: (B, vocab) for the last position. Returns the chosen ids, (B, 1).

    temperature 0 is greedy (argmax); otherwise logits are divided by the temperature (below 1 sharpens,
    above 1 flattens), cut to the top_k most likely tokens and/or the smallest set whose probability
    reaches top_p, then sampled.
    """
    if not 0 <= temperature < float("inf"):  # also refuses nan
        raise ValueError(f"temperature must be a number >= 0 (0 means greedy), got {temperature}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    # Subtract the row's maximum before dividing: the best token's score becomes exactly 0 and the others
    # negative, so a tiny temperature (1e-40) sends them to -inf instead of overflowing into inf - inf = nan.
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature
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
    sorted_logits = sorted_logits.masked_fill(prob_before >= top_p, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
