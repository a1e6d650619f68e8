"""Pick a tokenizer by name: ``build_tokenizer`` makes (or trains) one, ``load_tokenizer`` reads a saved one.

The training scripts take ``--tokenizer {char,bpe,gpt2,wordpiece,bert-base-uncased,sentencepiece}`` and call
``build_tokenizer(kind, text=..., vocab_size=...)``. The trainable kinds learn their vocabulary from
``text``; ``gpt2`` and ``bert-base-uncased`` fetch the real vocabularies (see data/assets.py).
"""

from pathlib import Path

from .base import Tokenizer, TokenizerFileError, read_config
from .bpe import BPETokenizer
from .char import CharTokenizer
from .sentencepiece_tok import SentencePieceTokenizer
from .wordpiece import WordPieceTokenizer

TOKENIZER_KINDS = ("char", "bpe", "gpt2", "wordpiece", "bert-base-uncased", "sentencepiece")
TRAINABLE_KINDS = ("char", "bpe", "wordpiece", "sentencepiece")


def _classes() -> dict[str, type[Tokenizer]]:
    """The "kind" written in tokenizer.json -> the class that loads it."""
    classes = [CharTokenizer, BPETokenizer, WordPieceTokenizer, SentencePieceTokenizer]
    return {cls.kind: cls for cls in classes}


def build_tokenizer(kind: str, text: str | None = None, vocab_size: int | None = None) -> Tokenizer:
    """Train a tokenizer of ``kind`` on ``text``, or fetch the real GPT-2 / BERT vocabulary."""
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}")
    if kind in TRAINABLE_KINDS:
        if not text:
            raise ValueError(f"tokenizer kind {kind!r} is trained from text: pass text=<the training corpus>")
        if kind != "char" and vocab_size is None:
            raise ValueError(f"tokenizer kind {kind!r} needs vocab_size=<target vocabulary size>")
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size)
    if kind == "gpt2":
        from data.assets import fetch
        return BPETokenizer.from_tiktoken(fetch("gpt2-ranks"))
    if kind == "wordpiece":
        return WordPieceTokenizer.train(text, vocab_size)
    if kind == "bert-base-uncased":
        from data.assets import fetch
        return WordPieceTokenizer.from_vocab_file(fetch("bert-uncased-vocab"), lowercase=True)
    return SentencePieceTokenizer.train(text, vocab_size)


def load_tokenizer(folder) -> Tokenizer:
    """Load whatever tokenizer was saved in ``folder``, choosing the class by tokenizer.json's "kind"."""
    kind = read_config(folder)["kind"]
    classes = _classes()
    if kind not in classes:
        raise TokenizerFileError(f"{Path(folder) / 'tokenizer.json'} names kind {kind!r}, which no tokenizer "
                                 f"class reads; known kinds: {', '.join(classes)}")
    return classes[kind].load(folder)
