"""WordPiece, BERT style: the basic tokenizer (bert_basic.py), then greedy longest-match-first sub-words.

For each word from the basic tokenizer:
    start = 0
    while start < len(word):
        take the longest word[start:end] that is in the vocabulary, spelled "##" + word[start:end]
        when start > 0 (a continuation);  if none exists, the whole word becomes [UNK]
        start = end
A word longer than ``max_word_chars`` (100) characters is [UNK] outright. "unaffable" -> "un", "##aff",
"##able". Results are cached per word.

``encode(text)`` returns the sub-word ids alone, *without* [CLS]/[SEP]; ``encode_plus`` builds BERT's model
input: [CLS] a [SEP] (b [SEP]), with token_type_ids 0 for the first segment and 1 for the second,
truncation (longest first) and padding to ``max_length`` with an attention mask.
"""

from pathlib import Path

from common.atomic import write_text_atomic

from .base import Tokenizer, TokenizerFileError, check_ids, read_config, require, write_config
from .bert_basic import basic_tokenize, normalize, split_on_punctuation
from .wordpiece_train import train_wordpiece

PREFIX = "##"  # marks a sub-word that continues a word
SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}


class WordPieceTokenizer(Tokenizer):
    kind = "wordpiece"

    def __init__(self, vocab, lowercase: bool = True, strip_accents: bool | None = None, max_word_chars: int = 100,
                 special_tokens: dict[str, str] | None = None):
        """``vocab``: the pieces in id order. ``special_tokens``: role (pad/unk/cls/sep/mask) -> piece."""
        self.vocab = list(vocab)
        self.piece_to_id = {piece: i for i, piece in enumerate(self.vocab)}
        if len(self.piece_to_id) != len(self.vocab):
            repeated = next(p for i, p in enumerate(self.vocab) if self.piece_to_id[p] != i)
            raise ValueError(f"vocabulary piece {repeated!r} appears more than once")
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        if max_word_chars < 1:
            raise ValueError(f"max_word_chars={max_word_chars} must be at least 1")
        self.max_word_chars = max_word_chars
        self.special_tokens = dict(SPECIAL_TOKENS if special_tokens is None else special_tokens)
        missing = [p for p in self.special_tokens.values() if p not in self.piece_to_id]
        if set(self.special_tokens) != set(SPECIAL_TOKENS) or missing:
            raise ValueError(f"special tokens must give pad, unk, cls, sep and mask pieces that are in the "
                             f"vocabulary; missing: {missing or sorted(set(SPECIAL_TOKENS) - set(self.special_tokens))}")
        ids = {role: self.piece_to_id[piece] for role, piece in self.special_tokens.items()}
        self.pad_id, self.unk_id, self.cls_id = ids["pad"], ids["unk"], ids["cls"]
        self.sep_id, self.mask_id = ids["sep"], ids["mask"]
        self.cache: dict[str, list[int]] = {}

    @classmethod
    def from_vocab_file(cls, path, lowercase: bool = True, **kwargs) -> "WordPieceTokenizer":
        """A BERT ``vocab.txt``: one piece per line, the line number (from 0) being its id."""
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline ending the last line
        for number, piece in enumerate(lines, start=1):
            if not piece.strip():
                raise TokenizerFileError(f"{path}, line {number}: empty piece; the vocabulary file is corrupt")
        try:
            return cls(lines, lowercase=lowercase, **kwargs)
        except ValueError as err:
            raise TokenizerFileError(f"{path}: {err}; the vocabulary file is corrupt") from None

    @classmethod
    def train(cls, text: str, vocab_size: int, lowercase: bool = True) -> "WordPieceTokenizer":
        """Learn a vocabulary of ``vocab_size`` pieces from ``text`` (see wordpiece_train.py)."""
        words = normalize(text, lowercase).split()
        vocab = train_wordpiece(words, vocab_size, list(SPECIAL_TOKENS.values()))
        return cls(vocab, lowercase=lowercase)

    # ---- the interface ------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def special_ids(self) -> dict[str, int]:
        return {piece: self.piece_to_id[piece] for piece in self.special_tokens.values()}

    def basic_tokenize(self, text: str) -> list[str]:
        """Clean, split on whitespace, lower-case and strip accents (uncased), split off punctuation."""
        return basic_tokenize(text, self.lowercase, self.strip_accents)

    def encode(self, text: str) -> list[int]:
        """Sub-word ids of ``text``, with no [CLS]/[SEP] (``encode_plus`` adds them)."""
        ids: list[int] = []
        cache = self.cache
        for word in normalize(text, self.lowercase, self.strip_accents).split():
            word_ids = cache.get(word)
            if word_ids is None:
                word_ids = cache[word] = [i for piece in split_on_punctuation(word) for i in self.wordpiece(piece)]
            ids.extend(word_ids)
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The pieces ``encode`` would give, as strings: "unaffable" -> ["un", "##aff", "##able"]."""
        return [self.vocab[i] for i in self.encode(text)]

    def wordpiece(self, word: str) -> list[int]:
        """Greedy longest-match-first split of one word (no whitespace, no punctuation inside)."""
        if len(word) > self.max_word_chars:
            return [self.unk_id]
        ids: list[int] = []
        start = 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else PREFIX + word[start:end]
                if piece in self.piece_to_id:
                    ids.append(self.piece_to_id[piece])
                    start = end
                    break
            else:  # no prefix of the rest is a piece: the word cannot be spelled
                return [self.unk_id]
        return ids

    def decode(self, ids, skip_special: bool = False) -> str:
        """Pieces joined by spaces, "##" continuations glued to the piece before. Lossy: case, accents and
        the original spacing around punctuation are gone."""
        specials = set(self.special_ids.values()) if skip_special else set()
        words: list[str] = []
        for i in check_ids(ids, self.vocab_size):
            if i in specials:
                continue
            piece = self.vocab[i]
            if piece.startswith(PREFIX) and words:
                words[-1] += piece[len(PREFIX):]
            else:
                words.append(piece)
        return " ".join(words)

    # ---- BERT model input ---------------------------------------------------------------------------
    def encode_plus(self, text: str, text_b: str | None = None, max_length: int | None = None,
                    truncation: bool = False, padding: bool = False) -> dict[str, list[int]]:
        """[CLS] a [SEP] or [CLS] a [SEP] b [SEP] with token_type_ids and attention_mask.

        truncation: cut the longer segment first so the whole input fits ``max_length``.
        padding: append [PAD] (type 0, mask 0) up to ``max_length``."""
        if (truncation or padding) and max_length is None:
            raise ValueError("truncation and padding need max_length=<number of tokens, specials included>")
        ids_a = self.encode(text)
        ids_b = self.encode(text_b) if text_b is not None else None
        n_special = 2 if ids_b is None else 3
        if truncation:
            if max_length < n_special:
                raise ValueError(f"max_length={max_length} cannot hold the {n_special} special tokens")
            ids_a, ids_b = truncate_longest_first(ids_a, ids_b, max_length - n_special)
        input_ids = [self.cls_id, *ids_a, self.sep_id]
        token_type_ids = [0] * len(input_ids)
        if ids_b is not None:
            input_ids += [*ids_b, self.sep_id]
            token_type_ids += [1] * (len(ids_b) + 1)
        attention_mask = [1] * len(input_ids)
        if padding:
            n_pad = max(0, max_length - len(input_ids))
            input_ids += [self.pad_id] * n_pad
            token_type_ids += [0] * n_pad
            attention_mask += [0] * n_pad
        return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}

    # ---- files --------------------------------------------------------------------------------------
    def save(self, folder) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / "vocab.txt", "\n".join(self.vocab) + "\n")
        write_config(folder, {"kind": self.kind, "vocab_file": "vocab.txt", "lowercase": self.lowercase,
                              "strip_accents": self.strip_accents, "max_word_chars": self.max_word_chars,
                              "special_tokens": self.special_tokens})

    @classmethod
    def load(cls, folder) -> "WordPieceTokenizer":
        folder = Path(folder)
        config = read_config(folder, cls.kind)
        where = folder / "tokenizer.json"
        vocab_file = folder / require(config, "vocab_file", str, where)
        if not vocab_file.is_file():
            raise TokenizerFileError(f"{vocab_file} is missing; {where} names it, save the tokenizer again")
        strip = config.get("strip_accents")
        if strip is not None and not isinstance(strip, bool):
            raise TokenizerFileError(f"{where}: field 'strip_accents' must be true, false or null")
        return cls.from_vocab_file(vocab_file, lowercase=require(config, "lowercase", bool, where),
                                   strip_accents=strip,
                                   max_word_chars=require(config, "max_word_chars", int, where),
                                   special_tokens=require(config, "special_tokens", dict, where))


def truncate_longest_first(ids_a: list[int], ids_b: list[int] | None, budget: int):
    """Cut segments from the end until they fit ``budget`` tokens together, as tokenizers' "longest_first":
    the shorter segment stays whole when it fits in half the budget (the longer takes the rest); otherwise
    each gets half, the odd token going to the longer one (to the second on a tie). A single segment is
    simply cut to ``budget``."""
    if ids_b is None:
        return ids_a[:budget], None
    if len(ids_a) + len(ids_b) <= budget:
        return ids_a, ids_b
    shorter = min(len(ids_a), len(ids_b))
    keep_shorter = shorter if 2 * shorter <= budget else budget // 2
    keep_longer = budget - keep_shorter
    keep_a, keep_b = (keep_longer, keep_shorter) if len(ids_a) > len(ids_b) else (keep_shorter, keep_longer)
    return ids_a[:keep_a], ids_b[:keep_b]
