"""Exercise 8: byte-pair encoding, one training step and encoding (docs/tokenizers.md).

Check it with `python -m exercises check bpe`.
"""


def count_pairs(word_counts):
    """How often each adjacent pair of symbols occurs. word_counts: {word as a tuple of ids: count}.

    Returns {(a, b): total}, every word's pairs weighted by its count. Overlaps count apart: the word
    (7, 7, 7) holds the pair (7, 7) twice.

    Hint: zip(word, word[1:]) walks the adjacent pairs; collections.Counter adds up.
    """
    raise NotImplementedError("write me: count the adjacent pairs, weighted by word count")


def merge_pair(word, pair, new_id):
    """Replace every occurrence of pair in word (a sequence of ids) by new_id, left to right; return a list.

    merge_pair([7, 7, 7], (7, 7), 9) == [9, 7]: the first two merge, the third is left alone.

    Hint: walk with an index i; if word[i], word[i + 1] is the pair, emit new_id and jump by 2.
    """
    raise NotImplementedError("write me: one merge, left to right")


def encode_word(data, merges):
    """BPE-encode one pre-tokenised piece. data: bytes; merges: [(a, b, merged_id), ...] in the order they
    were learned (the rank of a merge is its index). Byte b starts as id b.

        ids = list(data)
        repeat: among the adjacent pairs of ids that are merges, take the one of LOWEST rank
                (not the leftmost one) and replace all its occurrences, left to right, by its merged id
        until no adjacent pair is a merge

    Hint: build rank = {(a, b): index} and merged = {(a, b): merged_id} once; min(pairs, key=...) finds the
    best pair; merge_pair above does the replacing.
    """
    raise NotImplementedError("write me: merge the lowest-ranked pair until none is left")
