"""Learning BPE merges from text: the greedy loop, with pair counts and their places updated incrementally.

Training BPE (Sennrich et al., 2016) repeats one step: count every adjacent pair of symbols in the corpus,
merge the most frequent pair into a new symbol, everywhere. Done naively each step recounts the whole
corpus. Three observations make it fast:
  1. Merges never cross a word (pre-tokenised piece), so the corpus is just its distinct words with
     their counts: a few tens of thousands of words instead of millions of pieces.
  2. A merge changes only the pairs at and beside the merged pair's occurrences: in "x a b y", merging
     (a, b) removes (x, a), (a, b), (b, y) and adds (x, ab), (ab, y). An index pair -> the positions where
     it occurs lets a step visit those occurrences alone, and the words are kept as linked lists of
     symbols, so each merge is an O(1) splice. A step costs O(k log k) for the pair's k occurrences,
     however long the words are (one 1 MB word with no spaces included).
  3. The most frequent pair comes from a heap of (-count, pair) entries, kept up to date lazily, since a
     heap cannot find and change an entry cheaply. Invariant: every pair that occurs has an entry with at
     least its current count. A count that grows is pushed as a new entry; one that falls keeps its old,
     too high entry, which is pushed back with the true count when it surfaces; an entry below its pair's
     count (a newer one exists) or for a pair that no longer occurs is dropped when it surfaces.
Ties between equally frequent pairs go to the smaller pair of ids (compared as tuples), so training is
deterministic.
"""

import heapq
import warnings
from collections import Counter, defaultdict

import regex

from common.errors import ConfigError

from .byte_level import compile_pattern, replace_lone_surrogates

Pair = tuple[int, int]


class PairIndex:
    """All distinct words laid end to end as linked lists of symbols, with where each adjacent pair occurs.

    Positions p = 0..N-1 run over every word's symbols, word after word:
        symbol[p]                 the symbol at p; None once p has been merged into its left neighbour
        prev_pos[p], next_pos[p]  the positions of p's neighbours in the same word (-1: none)
        weight[p]                 how often p's word occurs in the corpus
    and for each pair (symbol[p], symbol[next_pos[p]]) that occurs:
        places[pair]              the positions p where it starts
        count[pair]               the sum of weight[p] over places[pair]
    Overlapping occurrences count apart ("aaa" holds (a, a) at 0 and at 1), as a plain recount would."""

    def __init__(self, word_counts: dict[tuple[int, ...], int]):
        self.symbol: list[int | None] = []
        self.prev_pos: list[int] = []
        self.next_pos: list[int] = []
        self.weight: list[int] = []
        self.places: dict[Pair, set[int]] = defaultdict(set)
        self.count: Counter = Counter()
        self.grown: set[Pair] = set()  # pairs whose count grew since the last merge step
        for word, freq in word_counts.items():
            start, end = len(self.symbol), len(self.symbol) + len(word)
            self.symbol.extend(word)
            self.weight.extend([freq] * len(word))
            self.prev_pos.extend(range(start - 1, end - 1))
            self.next_pos.extend(range(start + 1, end + 1))
            if word:  # a word's first symbol has no left neighbour, its last no right one
                self.prev_pos[start] = self.next_pos[end - 1] = -1
            for p in range(start, end - 1):
                self.add((self.symbol[p], self.symbol[p + 1]), p)

    def add(self, pair: Pair, p: int) -> None:
        self.places[pair].add(p)
        self.count[pair] += self.weight[p]
        self.grown.add(pair)

    def remove(self, pair: Pair, p: int) -> None:
        places = self.places[pair]
        places.discard(p)
        self.count[pair] -= self.weight[p]
        if not places:  # the pair occurs nowhere any more
            del self.places[pair], self.count[pair]

    def merge(self, pair: Pair, new_id: int) -> list[Pair]:
        """Replace every occurrence of ``pair`` by ``new_id``, left to right within each word, updating
        the counts and places of the pairs beside them. Returns the pairs whose count grew (for the heap)."""
        a, b = pair
        symbol, prev_pos, next_pos = self.symbol, self.prev_pos, self.next_pos
        places = self.places[pair]  # emptied (and dropped from self.places) as the loop goes
        for p in sorted(places):  # positions in order, so each word is merged left to right
            if p not in places:  # lost to the occurrence just before it: "a a a" -> "aa a"
                continue
            q = next_pos[p]
            before, after = prev_pos[p], next_pos[q]  # "x a b y": before holds x, p a, q b, after y
            if before >= 0:
                self.remove((symbol[before], a), before)
            self.remove(pair, p)
            if after >= 0:
                self.remove((b, symbol[after]), q)
                prev_pos[after] = p
            symbol[p], symbol[q], next_pos[p] = new_id, None, after  # p now holds "ab"; q leaves its word
            if before >= 0:
                self.add((symbol[before], new_id), before)
            if after >= 0:
                self.add((new_id, symbol[after]), p)
        grown, self.grown = self.grown, set()
        return [c for c in grown if c in self.count]


def learn_merges(word_counts: dict[tuple[int, ...], int], n_merges: int, first_new_id: int) -> list[Pair]:
    """Greedy BPE over words given as tuples of symbol ids. Merge k creates id ``first_new_id + k``.

    Returns the merged pairs in order; stops early when no pair occurs any more."""
    index = PairIndex(word_counts)
    heap = [(-count, pair) for pair, count in index.count.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    while len(merges) < n_merges:
        pair = pop_most_frequent(heap, index.count)
        if pair is None:
            break
        for changed in index.merge(pair, first_new_id + len(merges)):
            heapq.heappush(heap, (-index.count[changed], changed))
        merges.append(pair)
    return merges


def pop_most_frequent(heap: list, pair_counts: Counter) -> Pair | None:
    """Pop heap entries until one matches its pair's current count; None when the heap runs out.

    An entry above the current count (the count fell since) is pushed back with the true count; one below
    it (a newer entry exists) or of a pair that no longer occurs (count 0) is dropped."""
    while heap:
        negative_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count == -negative_count:
            return pair
        if 0 < count < -negative_count:
            heapq.heappush(heap, (-count, pair))
    return None


def count_words(text: str, special_tokens: list[str], pattern: str) -> dict[tuple[int, ...], int]:
    """Distinct pre-tokenised pieces of ``text`` as tuples of byte values -> how often each occurs."""
    text = replace_lone_surrogates(text)
    # special tokens are cut out of the training text, never learned as merges
    parts = regex.split("|".join(map(regex.escape, special_tokens)), text) if special_tokens else [text]
    splitter = compile_pattern(pattern)
    piece_counts: Counter = Counter()
    for part in parts:
        piece_counts.update(splitter.findall(part))
    return {tuple(piece.encode("utf-8")): n for piece, n in piece_counts.items()}


def train_bpe(text: str, vocab_size: int, special_tokens: list[str], pattern: str):
    """Byte-level BPE: ids 0..255 are the bytes, then one id per merge, then the special tokens.

    Returns (byte_ids, merges as (left, right, merged) ids, special_tokens as string -> id)."""
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise ConfigError(f"a vocab_size of {vocab_size} is too small for byte-level BPE: the 256 bytes and "
                          f"{len(special_tokens)} special token(s) alone need {256 + len(special_tokens)}; ask for "
                          "more (GPT-2 has 50257)")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special_tokens {special_tokens} has repeats")
    word_counts = count_words(text, special_tokens, pattern)
    pairs = learn_merges(word_counts, n_merges, first_new_id=256)
    if len(pairs) < n_merges:  # the stopping rule of learn_merges: no adjacent pair is left anywhere
        warnings.warn(f"BPE training stopped at {256 + len(pairs) + len(special_tokens)} ids, asked for "
                      f"{vocab_size}: after {len(pairs)} merges every one of the text's {len(word_counts)} distinct "
                      "pre-tokenised pieces is a single token, so no pair is left to merge; the vocabulary is "
                      "smaller than asked", stacklevel=3)
    merges = [(a, b, 256 + k) for k, (a, b) in enumerate(pairs)]
    first_special = 256 + len(merges)
    specials = {s: first_special + k for k, s in enumerate(special_tokens)}
    return list(range(256)), merges, specials
