"""Learning BPE merges from text: the greedy loop, with pair counts updated incrementally.

Training BPE (Sennrich et al., 2016) repeats one step: count every adjacent pair of symbols in the corpus,
merge the most frequent pair into a new symbol, everywhere. Done naively each step recounts the whole
corpus. Two observations make it fast:
  1. Merges never cross a word (pre-tokenised piece), so the corpus is just its distinct words with
     their counts: a few tens of thousands of words instead of millions of pieces.
  2. A merge only changes the words that contain the merged pair. For those words alone we subtract
     their old pairs' counts and add their new pairs'; every other count stays right. A heap holds
     (-count, pair) entries; an entry whose count is out of date is skipped when it surfaces.
Ties between equally frequent pairs go to the smaller pair of ids (compared as tuples), so training is
deterministic.
"""

import heapq
from collections import Counter, defaultdict

import regex

from .byte_level import compile_pattern, replace_lone_surrogates


def learn_merges(word_counts: dict[tuple[int, ...], int], n_merges: int, first_new_id: int) -> list[tuple[int, int]]:
    """Greedy BPE over words given as tuples of symbol ids. Merge k creates id ``first_new_id + k``.

    Returns the merged pairs in order; stops early when no pair occurs any more."""
    words = [list(word) for word in word_counts]
    freqs = list(word_counts.values())
    pair_counts: Counter = Counter()
    words_with_pair: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> indices of words holding it
    for index, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            words_with_pair[pair].add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges:
        pair = pop_most_frequent(heap, pair_counts)
        if pair is None:
            break
        new_id = first_new_id + len(merges)
        merges.append(pair)
        changed: set[tuple[int, int]] = set()
        for index in words_with_pair.pop(pair):
            old = words[index]
            new = merge_in_word(old, pair, new_id)
            if len(new) == len(old):  # the word lost this pair to an earlier merge
                continue
            freq = freqs[index]
            for p in zip(old, old[1:]):
                pair_counts[p] -= freq
                changed.add(p)
            for p in zip(new, new[1:]):
                pair_counts[p] += freq
                words_with_pair[p].add(index)
                changed.add(p)
            words[index] = new
        for p in changed:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], p))
            else:
                del pair_counts[p]
    return merges


def pop_most_frequent(heap: list, pair_counts: Counter) -> tuple[int, int] | None:
    """Pop heap entries until one matches its pair's current count; None when the heap runs out."""
    while heap:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) == -negative_count > 0:
            return pair
    return None


def merge_in_word(word: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Every occurrence of ``pair`` in ``word``, left to right, replaced by ``new_id``."""
    out: list[int] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def train_bpe(text: str, vocab_size: int, special_tokens: list[str], pattern: str):
    """Byte-level BPE: ids 0..255 are the bytes, then one id per merge, then the special tokens.

    Returns (byte_ids, merges as (left, right, merged) ids, special_tokens as string -> id)."""
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise ValueError(f"vocab_size={vocab_size} is too small: the 256 bytes and {len(special_tokens)} special "
                         f"tokens alone need {256 + len(special_tokens)}")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special_tokens {special_tokens} has repeats")
    text = replace_lone_surrogates(text)
    # special tokens are cut out of the training text, never learned as merges
    parts = regex.split("|".join(map(regex.escape, special_tokens)), text) if special_tokens else [text]
    splitter = compile_pattern(pattern)
    piece_counts: Counter = Counter()
    for part in parts:
        piece_counts.update(splitter.findall(part))
    word_counts = {tuple(piece.encode("utf-8")): n for piece, n in piece_counts.items()}
    pairs = learn_merges(word_counts, n_merges, first_new_id=256)
    merges = [(a, b, 256 + k) for k, (a, b) in enumerate(pairs)]
    first_special = 256 + len(merges)
    specials = {s: first_special + k for k, s in enumerate(special_tokens)}
    return list(range(256)), merges, specials
