"""Learning a WordPiece vocabulary: BPE merges over characters, with "##" marking continuations.

Each word from the basic tokenizer is spelled as its first character followed by "##"-prefixed ones
("hello" -> h ##e ##l ##l ##o), and the frequency-greedy merge loop of bpe_train.py runs on those symbols;
merging "h" with "##e" gives "he", "##l" with "##o" gives "##lo". The vocabulary is the special tokens,
then every character seen in both spellings ("x" and "##x", so any word made of known characters can be
spelled), then the merged pieces in the order they were learned. This is how Hugging Face's
WordPieceTrainer builds its vocabulary too (a BPE trainer with a continuing-subword prefix). Google's
original WordPiece picked merges by likelihood gain instead; the encoder (wordpiece.py) is the same for both.
"""

import warnings
from collections import Counter

from common.errors import ConfigError

from .bert_basic import split_on_punctuation
from .bpe_train import learn_merges

PREFIX = "##"


def train_wordpiece(words: list[str], vocab_size: int, special_tokens: list[str]) -> list[str]:
    """``words``: whitespace-split normalised text. Returns the vocabulary, pieces in id order."""
    word_counts: Counter = Counter()
    for word, count in Counter(words).items():  # split each distinct word once, then weight by its count
        for piece in split_on_punctuation(word):
            word_counts[piece] += count
    chars = sorted({c for word in word_counts for c in word})
    symbols = chars + [PREFIX + c for c in chars]
    n_merges = vocab_size - len(special_tokens) - len(symbols)
    if n_merges < 0:
        raise ConfigError(f"a vocab_size of {vocab_size} is too small: {len(special_tokens)} special tokens and "
                          f"{len(symbols)} character pieces (each of {len(chars)} characters with and without "
                          f"'##') already need {len(special_tokens) + len(symbols)}")
    symbol_id = {s: i for i, s in enumerate(symbols)}
    spelled = {tuple(symbol_id[c if i == 0 else PREFIX + c] for i, c in enumerate(word)): n
               for word, n in word_counts.items()}
    # Two different merges can spell the same piece ("##a"+"##bc" and "##ab"+"##c"), so learn a few more
    # merges than needed and keep the first n_merges distinct new pieces.
    pieces = list(symbols)
    vocab = list(special_tokens) + symbols
    seen = set(vocab)
    n_tried = n_merges + n_merges // 10 + 10
    merged = learn_merges(spelled, n_tried, first_new_id=len(symbols))
    for left, right in merged:
        piece = pieces[left] + pieces[right][len(PREFIX):]  # the right part is always a "##" continuation
        pieces.append(piece)
        if piece not in seen and len(vocab) < vocab_size:
            seen.add(piece)
            vocab.append(piece)
    if len(vocab) < vocab_size:
        why = (f"after {len(merged)} merges every one of the {len(spelled)} distinct words is a single piece, so no "
               "pair is left to merge" if len(merged) < n_tried else
               f"{n_tried} merges gave only {len(vocab) - len(special_tokens) - len(symbols)} distinct new pieces")
        warnings.warn(f"WordPiece training stopped at {len(vocab)} ids, asked for {vocab_size}: {why}; the "
                      "vocabulary is smaller than asked", stacklevel=3)
    return vocab
