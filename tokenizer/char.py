"""Character-level tokenizer: one id per character, the vocabulary being the sorted characters of the text.

This is what the GPT ``small`` config trains on (as in nanoGPT's Shakespeare example): no merges, no
special tokens, ids 0..V-1 in code-point order.
"""

from pathlib import Path

from .base import Tokenizer, TokenizerFileError, check_ids, read_config, require, write_config


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, chars):
        chars = list(chars)
        if not chars:
            raise ValueError("CharTokenizer needs at least one character; train it on non-empty text")
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("CharTokenizer chars must be distinct single characters")
        self.chars = chars  # id -> character
        self.char_to_id = {c: i for i, c in enumerate(chars)}

    @classmethod
    def train(cls, text: str) -> "CharTokenizer":
        """The vocabulary is every distinct character of ``text``, sorted by code point."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.char_to_id[c] for c in text]
        except KeyError:
            pos, char = next((i, c) for i, c in enumerate(text) if c not in self.char_to_id)
            raise ValueError(f"character {char!r} (U+{ord(char):04X}) at position {pos} is not in the "
                             f"vocabulary of {self.vocab_size} characters; train the tokenizer on text "
                             "that contains it") from None

    def decode(self, ids) -> str:
        return "".join([self.chars[i] for i in check_ids(ids, self.vocab_size)])

    def save(self, folder) -> None:
        write_config(folder, {"kind": self.kind, "chars": "".join(self.chars)})

    @classmethod
    def load(cls, folder) -> "CharTokenizer":
        config = read_config(folder, cls.kind)
        chars = require(config, "chars", str, Path(folder) / "tokenizer.json")
        try:
            return cls(chars)
        except ValueError as err:
            raise TokenizerFileError(f"{Path(folder) / 'tokenizer.json'}: {err}") from None
