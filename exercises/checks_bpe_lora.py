"""Checks for exercises 8-9: a BPE merge step and encoding; LoRA's forward and merge."""

from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

from minilm.peft.lora import LoRALinear
from tokenizer.bpe import BPETokenizer
from tokenizer.bpe_train import PairIndex, count_words, train_bpe
from tokenizer.byte_level import GPT2_PATTERN

from .checking import Exercise, Failed, close, generator, matches_one_of, max_diff, require_shape

# ---- 8. BPE -----------------------------------------------------------------------------------------

BPE = Exercise("bpe", "e08_bpe", ("count_pairs", "merge_pair", "encode_word"),
               "count pairs, apply one merge, encode a word by merge rank")
TEXT = ("the cat sat on the mat; the cat ate the rat. that hat is the cat's hat, and the mat is flat. " * 3
        + "aaaa bbbb abab baba banana bandana")


@lru_cache(maxsize=1)
def trained():
    """(word counts of TEXT, its merges learned by tokenizer/bpe_train.py, a BPETokenizer with them)."""
    _, merges, _ = train_bpe(TEXT, 256 + 40, [], GPT2_PATTERN)
    return count_words(TEXT, [], GPT2_PATTERN), merges, BPETokenizer(range(256), merges)


@BPE.check("count_pairs")
def _(m):
    got = dict(m.count_pairs({(1, 2, 3): 2, (2, 3): 1, (7, 7, 7): 1}))
    if got.get((7, 7)) == 1:
        raise Failed("count_pairs: overlaps count apart, (7, 7, 7) holds (7, 7) twice; got 1")
    if got.get((1, 2)) == 1:
        raise Failed("count_pairs: weight each word's pairs by its count ((1, 2, 3) occurs 2 times)")
    expected = {(1, 2): 2, (2, 3): 3, (7, 7): 2}
    if got != expected:
        raise Failed(f"count_pairs({{(1, 2, 3): 2, (2, 3): 1, (7, 7, 7): 1}}) should be {expected}, got {got}")
    words = trained()[0]
    if dict(m.count_pairs(words)) != dict(PairIndex(words).count):
        raise Failed("count_pairs differs from tokenizer/bpe_train.py's PairIndex counts on a real corpus")


@BPE.check("merge_pair")
def _(m):
    cases = [(([7, 7, 7], (7, 7), 9), [9, 7]), (([1, 2, 1, 2, 3], (1, 2), 9), [9, 9, 3]),
             (([7, 7, 7, 7], (7, 7), 9), [9, 9]), (([1, 3, 2], (1, 2), 9), [1, 3, 2]), (([1], (1, 2), 9), [1])]
    for (word, pair, new_id), expected in cases:
        original = list(word)
        got = list(m.merge_pair(word, pair, new_id))
        if word != original:
            raise Failed("merge_pair changed the word it was given: build a new list")
        if got != expected:
            raise Failed(f"merge_pair({original}, {pair}, {new_id}) should be {expected}, got {got} "
                         "(every occurrence, left to right, never overlapping)")


@BPE.check("encode_word takes the lowest rank first")
def _(m):
    merges = [(98, 99, 256), (97, 98, 257)]  # (b, c) was learned before (a, b)
    got = list(m.encode_word(b"abc", merges))
    if got == [257, 99]:
        raise Failed("encode_word merged the leftmost pair first: on b'abc' with merges [(b, c), (a, b)] the "
                     "pair (b, c) has the lower rank, expected [97, 256], got [257, 99]")
    if got != [97, 256]:
        raise Failed(f"encode_word(b'abc', [(98, 99, 256), (97, 98, 257)]) should be [97, 256], got {got}")


@BPE.check("encode_word repeats until no merge applies")
def _(m):
    merges = [(97, 97, 256), (256, 256, 257), (256, 97, 258)]
    for data, expected in ((b"aaaa", [257]), (b"aaa", [258]), (b"aaaaa", [257, 97]), (b"", []), (b"b", [98])):
        got = list(m.encode_word(data, merges))
        if got != expected:
            raise Failed(f"encode_word({data!r}, {merges}) should be {expected}, got {got}")


@BPE.check("encode_word matches BPETokenizer")
def _(m):
    words, merges, tok = trained()
    g = generator(0)
    pieces = [bytes(w) for w in words] + [bytes(torch.randint(97, 101, (30,), generator=g).tolist())]
    for piece in pieces:
        got, expected = list(m.encode_word(piece, merges)), tok.merge_bytes(piece)
        if got != expected:
            raise Failed(f"encode_word({piece!r}) with merges learned from a small text gives {got}, "
                         f"BPETokenizer.merge_bytes gives {expected}")


# ---- 9. LoRA ----------------------------------------------------------------------------------------

LORA = Exercise("lora", "e09_lora", ("lora_forward", "lora_merge"), "LoRA's forward pass and merge")
D_IN, D_OUT, R, ALPHA = 12, 10, 3, 6.0  # scaling alpha / r = 2


def lora_layer(seed=0, bias=True):
    """A LoRALinear with a random base and a random, non-zero B; and an input x (2, 5, d_in)."""
    torch.manual_seed(seed)
    layer = LoRALinear(nn.Linear(D_IN, D_OUT, bias=bias), R, ALPHA, dropout=0.0)
    nn.init.normal_(layer.lora_B)
    return layer, torch.randn(2, 5, D_IN, generator=generator(seed))


def learner_forward(m, layer, x):
    return m.lora_forward(x, layer.weight, layer.bias, layer.lora_A, layer.lora_B, ALPHA, R)


@LORA.check("forward: shape")
def _(m):
    layer, x = lora_layer()
    with torch.no_grad():
        require_shape("the output", learner_forward(m, layer, x), (2, 5, D_OUT))


@LORA.check("forward: B = 0 is the base layer")
def _(m):
    layer, x = lora_layer()
    with torch.no_grad():
        layer.lora_B.zero_()
        got, expected = learner_forward(m, layer, x), F.linear(x, layer.weight, layer.bias)
    if not close(got, expected):
        raise Failed("with lora_B = 0 the output should be the base layer x Wᵀ + b "
                     f"(differs by up to {max_diff(got, expected):.3g})")


@LORA.check("forward: scaled by alpha / r")
def _(m):
    for bias in (True, False):
        layer, x = lora_layer(bias=bias)
        with torch.no_grad():
            got, expected = learner_forward(m, layer, x), layer(x)
            base, update = F.linear(x, layer.weight, layer.bias), x @ layer.lora_A.T @ layer.lora_B.T
        if close(got, expected):
            continue
        mistake = matches_one_of(got, {
            "forgot the scaling alpha / r on the update": base + update,
            "scaled by alpha, not alpha / r": base + ALPHA * update,
            "scaled by r / alpha, not alpha / r": base + R / ALPHA * update,
        })
        raise Failed(mistake or f"differs from LoRALinear by up to {max_diff(got, expected):.3g}"
                                f"{'' if bias else ' with bias=None'}: y = x Wᵀ + b + (alpha / r) x Aᵀ Bᵀ")


@LORA.check("merge: W + (alpha / r) B A")
def _(m):
    layer, _ = lora_layer()
    weight = layer.weight.detach().clone()
    with torch.no_grad():
        got = m.lora_merge(layer.weight, layer.lora_A, layer.lora_B, ALPHA, R)
        require_shape("the merged weight", got, (D_OUT, D_IN))
        if not torch.equal(layer.weight, weight):
            raise Failed("lora_merge changed weight in place: return a new tensor")
        expected = layer.weight + layer.delta_weight()
        if not close(got, expected):
            mistake = matches_one_of(got, {"forgot the scaling alpha / r": layer.weight + layer.lora_B @ layer.lora_A})
            raise Failed(mistake or f"merged weight differs from W + (alpha / r) B A by {max_diff(got, expected):.3g}")


@LORA.check("merge: the merged layer computes the LoRA forward")
def _(m):
    layer, x = lora_layer(seed=1)
    with torch.no_grad():
        merged = m.lora_merge(layer.weight, layer.lora_A, layer.lora_B, ALPHA, R)
        got, expected = F.linear(x, merged, layer.bias), learner_forward(m, layer, x)
    if not close(got, expected, atol=1e-4):
        raise Failed("x W'ᵀ + b with your merged weight differs from your lora_forward by up to "
                     f"{max_diff(got, expected):.3g}")
