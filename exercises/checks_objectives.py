"""Checks for exercises 5-7: the next-token loss, BERT's 80/10/10 masking, top-p filtering."""

import torch
import torch.nn.functional as F

from minilm.model.losses import IGNORE_INDEX, next_token_loss
from minilm.model.sampling import _keep_top_p

from .checking import Exercise, Failed, close, first_index, generator, matches_one_of, require_shape

# ---- 5. the next-token loss -------------------------------------------------------------------------

LOSS = Exercise("next_token_loss", "e05_next_token_loss", ("next_token_loss",),
                "next-token loss from logits and the input ids (you do the shift)")


def loss_inputs():
    g = generator(0)
    logits = torch.randn(3, 7, 11, generator=g) * 2
    return logits, torch.randint(11, (3, 7), generator=g)


@LOSS.check("a scalar")
def _(m):
    logits, ids = loss_inputs()
    require_shape("the loss", m.next_token_loss(logits, ids), ())


@LOSS.check("shifted by one")
def _(m):
    logits, ids = loss_inputs()
    got = m.next_token_loss(logits, ids).detach()
    expected = next_token_loss(logits[:, :-1], ids[:, 1:])
    if close(got, expected):
        return
    ce = F.cross_entropy
    mistake = matches_one_of(got, {
        "loss not shifted: position t is scored on input_ids[:, t] itself, not on the next token "
        "input_ids[:, t + 1]": ce(logits.flatten(0, 1), ids.flatten()),
        "shifted the wrong way: logits[:, :-1] go with input_ids[:, 1:]": ce(logits[:, 1:].flatten(0, 1),
                                                                             ids[:, :-1].flatten()),
        "summed instead of averaged: take the mean over the positions":
            ce(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="sum"),
    })
    raise Failed(mistake or f"loss {got.item():.4f}, expected {expected.item():.4f} "
                            "(mean cross-entropy of logits[:, :-1] against input_ids[:, 1:])")


@LOSS.check("gradient reaches the logits")
def _(m):
    logits, ids = loss_inputs()
    logits.requires_grad_(True)
    loss = m.next_token_loss(logits, ids)
    if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
        raise Failed("the loss has no gradient (did you call .item(), detach, or work under torch.no_grad?)")
    loss.backward()
    if logits.grad[:, -1].abs().max() > 0:
        raise Failed("the last position got a gradient, but it has no next token to predict: drop logits[:, -1]")


# ---- 6. BERT's masking ------------------------------------------------------------------------------

MLM = Exercise("mlm_masking", "e06_mlm_masking", ("mask_tokens",), "BERT's 15% and 80/10/10 masking")
VOCAB, MASK_ID = 1000, 4


def mlm_inputs():
    g = generator(0)
    ids = torch.randint(5, VOCAB, (250, 400), generator=g)  # 100,000 positions, about 15,000 chosen
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True  # [CLS] and [SEP]
    special[:50, 300:] = True  # padding
    return ids, special


def run_mlm(m, seed=1):
    ids, special = mlm_inputs()
    before = ids.clone()
    masked, labels = m.mask_tokens(ids, special, MASK_ID, VOCAB, generator(seed))
    require_shape("masked_input_ids", masked, ids.shape)
    require_shape("labels", labels, ids.shape)
    if not torch.equal(ids, before):
        raise Failed("input_ids was changed in place: work on input_ids.clone()")
    return ids, special, masked, labels


@MLM.check("shapes, input untouched")
def _(m):
    run_mlm(m)


@MLM.check("special tokens never chosen")
def _(m):
    ids, special, masked, labels = run_mlm(m)
    if (special & (labels != IGNORE_INDEX)).any() or (special & (masked != ids)).any():
        raise Failed("a special position ([CLS], [SEP], padding) was chosen: choose only where special_mask is False")


@MLM.check("labels")
def _(m):
    ids, special, masked, labels = run_mlm(m)
    chosen = labels != IGNORE_INDEX
    if (chosen & (labels != ids)).any():
        b, t = first_index(chosen & (labels != ids))
        raise Failed(f"at a chosen position the label is the ORIGINAL token (position ({b}, {t}): label "
                     f"{labels[b, t].item()}, input {ids[b, t].item()})")
    if (~chosen & (masked != ids)).any():
        raise Failed(f"a position that was not chosen (label {IGNORE_INDEX}) was changed: only chosen ones change")


@MLM.check("15% chosen")
def _(m):
    _, special, _, labels = run_mlm(m)
    rate = ((labels != IGNORE_INDEX).sum() / (~special).sum()).item()
    if abs(rate - 0.15) > 0.01:
        raise Failed(f"chose {rate:.3f} of the non-special positions, expected 0.15")


@MLM.check("80/10/10")
def _(m):
    ids, _, masked, labels = run_mlm(m)
    chosen = labels != IGNORE_INDEX
    n = int(chosen.sum())
    if n == 0:
        raise Failed("no position was chosen")
    to_mask = (masked[chosen] == MASK_ID).float().mean().item()
    kept = (masked[chosen] == ids[chosen]).float().mean().item()
    rand = 1 - to_mask - kept
    # a random token is [MASK] or the original itself 1 time in VOCAB; that is within the tolerance
    if max(abs(to_mask - 0.8), abs(rand - 0.1), abs(kept - 0.1)) > 0.02:
        raise Failed(f"80/10/10 off (measured {to_mask:.2f}/{rand:.2f}/{kept:.2f} [MASK]/random/unchanged "
                     f"on {n:,} chosen positions)")
    if masked.min() < 0 or masked.max() >= VOCAB:
        raise Failed(f"a random token is outside 0 .. vocab_size-1 "
                     f"(got {masked.min().item()} .. {masked.max().item()})")


@MLM.check("uses the generator")
def _(m):
    first, second, other = (run_mlm(m, seed)[2:] for seed in (1, 1, 2))
    if not all(torch.equal(a, b) for a, b in zip(first, second)):
        raise Failed("not reproducible: the same generator seed gave different masks; pass generator=generator "
                     "to every torch.rand / torch.randint")
    if all(torch.equal(a, b) for a, b in zip(first, other)):
        raise Failed("two different generator seeds gave the same masks: draw the random numbers from the generator")


# ---- 7. top-p ---------------------------------------------------------------------------------------

TOP_P = Exercise("top_p", "e07_top_p", ("top_p_filter",), "top-p (nucleus) filtering")


def top_p_cases():
    g = generator(0)
    logits = torch.randn(64, 50, generator=g) * 2
    return [(logits, p) for p in (0.3, 0.5, 0.9)]


def kept_and_probs(m, logits, top_p):
    out = m.top_p_filter(logits.clone(), top_p)
    require_shape("the filtered logits", out, logits.shape)
    kept = torch.isfinite(out)
    return out, kept, logits.softmax(-1)


@TOP_P.check("shape; kept logits unchanged, others -inf")
def _(m):
    for logits, p in top_p_cases():
        out, kept, _ = kept_and_probs(m, logits, p)
        if (kept & (out != logits)).any():
            raise Failed("a kept token's logit changed: return the original logits of the kept tokens")
        if (~kept & (out != float("-inf"))).any():
            raise Failed("a removed token should have logit -inf (not nan or +inf)")
        if not kept.any(-1).all():
            raise Failed(f"a row kept no token at all (top_p={p}): the most likely token is always kept")


@TOP_P.check("keeps the most likely tokens")
def _(m):
    for logits, p in top_p_cases():
        _, kept, probs = kept_and_probs(m, logits, p)
        least_kept = probs.masked_fill(~kept, 2.0).min(-1).values
        most_removed = probs.masked_fill(kept, -1.0).max(-1).values
        if (most_removed > least_kept).any():
            row = first_index(most_removed > least_kept)[0]
            raise Failed(f"row {row} removed a token of probability {most_removed[row]:.3f} but kept one of "
                         f"{least_kept[row]:.3f}: keep the most likely tokens (sort descending)")


@TOP_P.check("mass reaches top_p")
def _(m):
    for logits, p in top_p_cases():
        _, kept, probs = kept_and_probs(m, logits, p)
        mass = (probs * kept).sum(-1)
        if (mass < p - 1e-6).any():
            row = first_index(mass < p - 1e-6)[0]
            raise Failed(f"top-p kept too few: row {row} keeps {mass[row]:.3f} of the mass, below top_p={p} "
                         "(a token is kept while the mass ABOVE it is below p, so the last one crosses p)")


@TOP_P.check("smallest such set")
def _(m):
    for logits, p in top_p_cases():
        _, kept, probs = kept_and_probs(m, logits, p)
        mass = (probs * kept).sum(-1)
        least_kept = probs.masked_fill(~kept, 2.0).min(-1).values
        too_many = (kept.sum(-1) > 1) & (mass - least_kept >= p)
        if too_many.any():
            row = first_index(too_many)[0]
            raise Failed(f"top-p kept too many: row {row} would still reach top_p={p} without its least likely "
                         f"kept token (p={least_kept[row]:.3f}); keep the smallest set")


@TOP_P.check("matches the library, top_p = 1 keeps all")
def _(m):
    for logits, p in top_p_cases() + [(top_p_cases()[0][0], 1.0)]:
        out = m.top_p_filter(logits.clone(), p)
        if not torch.equal(torch.isfinite(out), torch.isfinite(_keep_top_p(logits, p))):
            raise Failed(f"keeps a different set of tokens than minilm/model/sampling.py with top_p={p}")
