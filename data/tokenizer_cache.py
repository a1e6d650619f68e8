"""Train a tokenizer once per (kind, vocabulary size, corpus) and reuse it from the cache afterwards."""

import hashlib
import os
import shutil

from data.assets import cache_dir
from tokenizer import build_tokenizer, load_tokenizer
from tokenizer.factory import TRAINABLE_KINDS


def cached_tokenizer(kind: str, text: str, vocab_size: int | None = None):
    """build_tokenizer(kind, text, vocab_size), saved under <cache>/tokenizers/ and loaded when it exists.

    The real vocabularies (gpt2, bert-base-uncased) are not trained: they come from the asset cache.
    """
    if kind not in TRAINABLE_KINDS:
        return build_tokenizer(kind)
    key = hashlib.sha256(f"{kind}\0{vocab_size}\0".encode() + text.encode("utf-8")).hexdigest()[:16]
    folder = cache_dir() / "tokenizers" / f"{kind}-{vocab_size}-{key}"
    if (folder / "tokenizer.json").exists():
        return load_tokenizer(folder)
    tokenizer = build_tokenizer(kind, text=text, vocab_size=vocab_size)
    tmp = folder.with_name(folder.name + f".{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)  # a reader sees a complete folder or none
    return tokenizer
