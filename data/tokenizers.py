"""Tokenizers by name, for the training scripts: the trainable kinds, trained once per (kind, vocabulary
size, corpus) and reused from the cache; the real GPT-2, BERT and SmolLM2 vocabularies, fetched as assets
(SmolLM2's is read from the metadata of its GGUF file, chat template included).

tokenizer/ builds and trains tokenizers but fetches nothing; this is where names meet assets.
"""

import hashlib

from common.atomic import replace_folder_atomic
from common.errors import ConfigError
from data.assets import cache_dir, fetch
from tokenizer import BPETokenizer, WordPieceTokenizer, build_tokenizer, load_tokenizer
from tokenizer.factory import TRAINABLE_KINDS
from tokenizer.gguf_vocab import tokenizer_from_gguf

# The real vocabularies: name -> how to build the tokenizer from its fetched asset.
NAMED_VOCABULARIES = {
    "gpt2": lambda: BPETokenizer.from_tiktoken(fetch("gpt2-ranks")),
    "bert-base-uncased": lambda: WordPieceTokenizer.from_vocab_file(fetch("bert-uncased-vocab"), lowercase=True),
    "smollm2": lambda: tokenizer_from_gguf(fetch("smollm2-gguf")),
}
TOKENIZER_KINDS = ("char", "bpe", "gpt2", "wordpiece", "bert-base-uncased", "sentencepiece", "smollm2")


def named_tokenizer(kind: str):
    """The real GPT-2 ("gpt2"), BERT uncased ("bert-base-uncased") or SmolLM2 ("smollm2") tokenizer."""
    if kind not in NAMED_VOCABULARIES:
        raise ConfigError(f"{kind!r} is not a named vocabulary; choose one of {', '.join(NAMED_VOCABULARIES)}")
    return NAMED_VOCABULARIES[kind]()


def cached_tokenizer(kind: str, text: str, vocab_size: int | None = None):
    """build_tokenizer(kind, text, vocab_size), saved under <cache>/tokenizers/ and loaded when it exists.

    The real vocabularies (gpt2, bert-base-uncased, smollm2) are not trained: they come from the asset cache.
    """
    if kind in NAMED_VOCABULARIES:
        return named_tokenizer(kind)
    if kind not in TRAINABLE_KINDS:
        raise ConfigError(f"unknown tokenizer kind {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}")
    key = hashlib.sha256(f"{kind}\0{vocab_size}\0".encode() + text.encode("utf-8")).hexdigest()[:16]
    folder = cache_dir() / "tokenizers" / f"{kind}-{vocab_size}-{key}"
    if (folder / "tokenizer.json").exists():
        return load_tokenizer(folder)
    tokenizer = build_tokenizer(kind, text=text, vocab_size=vocab_size)
    replace_folder_atomic(folder, tokenizer.save)  # a reader sees a complete folder or none
    return tokenizer
