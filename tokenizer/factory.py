"""Pick a tokenizer by kind: ``build_tokenizer`` trains one, ``load_tokenizer`` reads a saved one.

``build_tokenizer(kind, text=..., vocab_size=...)`` learns a vocabulary of kind char, bpe, wordpiece or
sentencepiece from ``text``. The real GPT-2 and BERT vocabularies are files to read
(``BPETokenizer.from_tiktoken``, ``WordPieceTokenizer.from_vocab_file``); data/tokenizers.py fetches them
by name (gpt2, bert-base-uncased), since this package fetches nothing.
"""

from pathlib import Path

from common.errors import ConfigError

from .base import Tokenizer, TokenizerFileError, read_config
from .bpe import BPETokenizer
from .char import CharTokenizer
from .sentencepiece_tok import SentencePieceTokenizer
from .wordpiece import WordPieceTokenizer

TRAINABLE_KINDS = ("char", "bpe", "wordpiece", "sentencepiece")


def _classes() -> dict[str, type[Tokenizer]]:
    """The "kind" written in tokenizer.json -> the class that loads it."""
    classes = [CharTokenizer, BPETokenizer, WordPieceTokenizer, SentencePieceTokenizer]
    return {cls.kind: cls for cls in classes}


def build_tokenizer(kind: str, text: str | None = None, vocab_size: int | None = None) -> Tokenizer:
    """Train a tokenizer of ``kind`` (char, bpe, wordpiece or sentencepiece) on ``text``."""
    if kind not in TRAINABLE_KINDS:
        raise ConfigError(f"unknown tokenizer kind {kind!r}; choose one of {', '.join(TRAINABLE_KINDS)} "
                          "(the real gpt2 and bert-base-uncased vocabularies: data/tokenizers.py)")
    if not text or not text.strip():
        raise ConfigError(f"tokenizer kind {kind!r} learns its vocabulary from text, and the training text is "
                          "empty (or only whitespace): train it on a corpus with text in it")
    if kind != "char" and vocab_size is None:
        raise ConfigError(f"tokenizer kind {kind!r} needs a target vocabulary size (vocab_size; on the command "
                          "line --vocab_size), e.g. 4096")
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size)
    if kind == "wordpiece":
        return WordPieceTokenizer.train(text, vocab_size)
    return SentencePieceTokenizer.train(text, vocab_size)


def load_tokenizer(folder) -> Tokenizer:
    """Load whatever tokenizer was saved in ``folder``, choosing the class by tokenizer.json's "kind"."""
    kind = read_config(folder)["kind"]
    classes = _classes()
    if kind not in classes:
        raise TokenizerFileError(f"{Path(folder) / 'tokenizer.json'} names kind {kind!r}, which no tokenizer "
                                 f"class reads; known kinds: {', '.join(classes)}")
    return classes[kind].load(folder)
