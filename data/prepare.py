"""Text to training data: token ids stored once per split as a flat binary file, and random batches from it.

``prepare_token_files`` encodes each split's text and writes ``<split>.bin`` (the ids, back to back, as
uint16, or uint32 when the vocabulary needs it) plus ``meta.json``. A later call with the same texts and
tokenizer reuses the files; a changed text or tokenizer rebuilds them. The files are opened as numpy
memmaps, so a 1 GB corpus costs no memory until batches are read. ``get_batch`` then draws GPT's
(input, target) windows from a split. The format is described in docs/data.md.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

META_NAME = "meta.json"
FORMAT_VERSION = 1  # bump when the layout of the .bin files or meta.json changes


def read_text_file(path, min_chars: int = 1) -> str:
    """Read a UTF-8 training text for ``--data path``, with an error that says how to fix a bad file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--data {path}: no such file; pass the path of a UTF-8 text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--data {path}: not UTF-8 text (byte {err.start} is invalid); "
                         "convert it first, e.g. iconv -f latin1 -t utf-8") from None
    if not text.strip():
        raise ValueError(f"--data {path}: the file is empty; pass a file with training text in it")
    if len(text) < min_chars:
        raise ValueError(f"--data {path}: only {len(text):,} characters, and training needs at least "
                         f"{min_chars:,} (enough for a block in both splits); use a longer text or a "
                         "smaller block size")
    return text


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, val): the last ``val_fraction`` of the characters is held out for validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}: must be strictly between 0 and 1, e.g. 0.1")
    n_train = int(len(text) * (1.0 - val_fraction))
    if n_train == 0 or n_train == len(text):
        raise ValueError(f"a text of {len(text)} characters cannot be split with val_fraction="
                         f"{val_fraction}: one side would be empty; use a longer text")
    return text[:n_train], text[n_train:]


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type that holds every id: uint16 for up to 65,536 ids (GPT-2 has 50,257)."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def prepare_token_files(splits: dict[str, str], tokenizer, out_dir, tokenizer_fingerprint: str,
                        ) -> dict[str, np.memmap]:
    """Encode each split's text into ``out_dir/<split>.bin``, or reuse the files if nothing changed.

    ``tokenizer`` needs ``encode(text) -> list[int]`` and ``vocab_size``; ``tokenizer_fingerprint`` is any
    string that changes whenever the tokenizer's output could (see ``fingerprint_tokenizer``).
    Returns split name -> read-only 1-D memmap of the ids.
    """
    out_dir = Path(out_dir)
    expected = _expected_meta(splits, tokenizer.vocab_size, tokenizer_fingerprint)
    meta = _read_meta(out_dir)
    if meta is None or not _meta_matches(meta, expected) or not _sizes_match(out_dir, meta):
        meta = _build(splits, tokenizer, out_dir, expected)
    dtype = np.dtype(meta["dtype"])
    return {name: np.memmap(out_dir / f"{name}.bin", dtype=dtype, mode="r", shape=(info["num_tokens"],))
            for name, info in meta["splits"].items()}


def _expected_meta(splits: dict[str, str], vocab_size: int, fingerprint: str) -> dict:
    for name, text in splits.items():
        if not text:
            raise ValueError(f"split {name!r} is empty; every split needs some text")
    return {
        "format_version": FORMAT_VERSION,
        "tokenizer_fingerprint": fingerprint,
        "vocab_size": vocab_size,
        "dtype": token_dtype(vocab_size).name,
        "splits": {name: {"source_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
                   for name, text in splits.items()},
    }


def _read_meta(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing or unreadable: prepare afresh
        return None


def _meta_matches(meta: dict, expected: dict) -> bool:
    """Same format, tokenizer and texts (num_tokens is only known after encoding, so it is left out)."""
    fields = ("format_version", "tokenizer_fingerprint", "vocab_size", "dtype")
    if any(meta.get(f) != expected[f] for f in fields):
        return False
    have = meta.get("splits")
    if not isinstance(have, dict) or set(have) != set(expected["splits"]):
        return False
    return all(have[n].get("source_sha256") == want["source_sha256"] for n, want in expected["splits"].items())


def _sizes_match(out_dir: Path, meta: dict) -> bool:
    """A .bin of the wrong length (truncated, or replaced behind meta's back) is not trusted."""
    itemsize = np.dtype(meta["dtype"]).itemsize
    for name, info in meta["splits"].items():
        path = out_dir / f"{name}.bin"
        if not path.is_file() or path.stat().st_size != info["num_tokens"] * itemsize:
            return False
    return True


def _build(splits: dict[str, str], tokenizer, out_dir: Path, meta: dict) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    # meta.json goes first and comes back last: a crash in between leaves no meta, so nothing is
    # trusted, never an old meta beside a new .bin.
    (out_dir / META_NAME).unlink(missing_ok=True)
    dtype = np.dtype(meta["dtype"])
    for name, text in splits.items():
        ids = np.asarray(tokenizer.encode(text), dtype=np.int64)  # (N,)
        if ids.size == 0:
            raise ValueError(f"split {name!r} encodes to no tokens; check the tokenizer and the text")
        if ids.min() < 0 or ids.max() >= meta["vocab_size"]:
            raise ValueError(f"split {name!r}: the tokenizer produced id {int(ids.max())} (or a negative "
                             f"one), outside range(0, vocab_size={meta['vocab_size']}); its vocab_size is wrong")
        _write_atomically(out_dir / f"{name}.bin", ids.astype(dtype).tobytes())
        meta["splits"][name]["num_tokens"] = int(ids.size)
    _write_atomically(out_dir / META_NAME, (json.dumps(meta, indent=1) + "\n").encode("utf-8"))
    return meta


def _write_atomically(path: Path, data: bytes) -> None:
    """Write under a temporary name, flush to disk, then rename: a reader sees all of it or none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # a crash leaves only this hidden name
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fingerprint_tokenizer(tokenizer) -> str:
    """sha256 over the files ``tokenizer.save`` writes: equal for tokenizers that encode alike."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save(folder)
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def get_batch(tokens: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator,
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``block_size`` tokens and, for each, the next-token targets.

    The start positions come from ``generator``, so saving ``generator.get_state()`` in a checkpoint and
    restoring it resumes the exact same batches. Returns int64 tensors x, y of shape (B, T), y[:, t] being
    the token after x[:, t].
    """
    if len(tokens) <= block_size:
        raise ValueError(f"a split of {len(tokens)} tokens is too short for block_size={block_size}: it needs "
                         "at least block_size + 1 tokens; use a longer text or a smaller block_size")
    starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator).numpy()  # (B,)
    positions = starts[:, None] + np.arange(block_size + 1)  # (B, T+1)
    windows = torch.from_numpy(tokens[positions].astype(np.int64))  # (B, T+1): one gather, no loop over B
    return windows[:, :-1], windows[:, 1:]  # x, y: (B, T) each
