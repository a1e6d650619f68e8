"""Text to training data: token ids stored once per split as a flat binary file, and random batches from it.

``prepare_token_files`` encodes each split's text and writes ``<split>.bin`` (the ids, back to back, as
uint16, or uint32 when the vocabulary needs it) plus ``meta.json``. A later call with the same texts and
tokenizer reuses the files; a changed text or tokenizer rebuilds them. The files are opened as numpy
memmaps, so a 1 GB corpus costs no memory until batches are read; minilm/training/lm_task.py draws
GPT's (input, target) windows from them. The format is described in docs/data.md. ``load_corpus`` gives
the texts: Shakespeare's plays by default, or any text file.
"""

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from common.atomic import write_bytes_atomic
from common.errors import DataError, MissingFileError
from data.assets import cache_dir
from data.shakespeare import shakespeare_splits
from data.tokenizers import cached_tokenizer
from tokenizer import BPETokenizer

META_NAME = "meta.json"
FORMAT_VERSION = 1  # bump when the layout of the .bin files or meta.json changes


def read_text_file(path, min_chars: int = 1) -> str:
    """Read a UTF-8 training text for ``--data path``, with an error that says how to fix a bad file."""
    path = Path(path)
    if path.is_dir():
        raise MissingFileError(f"--data {path} is a folder; pass the path of a UTF-8 text file")
    if not path.is_file():
        raise MissingFileError(f"--data {path}: no such file; pass the path of a UTF-8 text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"--data {path}: not UTF-8 text (byte {err.start} is invalid); "
                        "convert it first, e.g. iconv -f latin1 -t utf-8") from None
    if not text.strip():
        raise DataError(f"--data {path}: the file is empty; pass a file with training text in it")
    if len(text) < min_chars:
        raise DataError(f"--data {path}: only {len(text):,} characters, and training needs at least "
                        f"{min_chars:,} (enough for a block in both splits); use a longer text or a "
                        "smaller block size")
    return text


def load_corpus(path: str | None, val_fraction: float, block_size: int) -> dict[str, str]:
    """The training and validation texts: of the file at path, or of Shakespeare's plays (path None)."""
    if path is None:
        train, val = shakespeare_splits(val_fraction)
    else:
        min_chars = int(2 * (block_size + 1) / min(val_fraction, 1 - val_fraction))
        train, val = split_text(read_text_file(path, min_chars=min_chars), val_fraction)
    return {"train": train, "val": val}


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, val): the last ``val_fraction`` of the characters is held out for validation."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction={val_fraction}: must be strictly between 0 and 1, e.g. 0.1")
    n_train = int(len(text) * (1.0 - val_fraction))
    if n_train == 0 or n_train == len(text):
        raise DataError(f"a text of {len(text)} characters cannot be split with val_fraction="
                        f"{val_fraction}: one side would be empty; use a longer text")
    return text[:n_train], text[n_train:]


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type that holds every id: uint16 for up to 65,536 ids (GPT-2 has 50,257)."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def prepare_token_files(splits: dict[str, str], tokenizer, out_dir, tokenizer_fingerprint: str,
                        encode=None) -> dict[str, np.memmap]:
    """Encode each split's text into ``out_dir/<split>.bin``, or reuse the files if nothing changed.

    ``tokenizer`` needs ``encode(text) -> list[int]`` and ``vocab_size``; ``tokenizer_fingerprint`` is any
    string that changes whenever the tokenizer's output could (see ``fingerprint_tokenizer``); ``encode``,
    if given, replaces ``tokenizer.encode``. Returns split name -> read-only 1-D memmap of the ids.
    """
    out_dir = Path(out_dir)
    expected = _expected_meta(splits, tokenizer.vocab_size, tokenizer_fingerprint)
    meta = _read_meta(out_dir)
    if meta is None or not _meta_matches(meta, expected) or not _sizes_match(out_dir, meta):
        meta = _build(splits, encode or tokenizer.encode, out_dir, expected)
    dtype = np.dtype(meta["dtype"])
    return {name: np.memmap(out_dir / f"{name}.bin", dtype=dtype, mode="r", shape=(info["num_tokens"],))
            for name, info in meta["splits"].items()}


def _expected_meta(splits: dict[str, str], vocab_size: int, fingerprint: str) -> dict:
    for name, text in splits.items():
        if not text:
            raise DataError(f"split {name!r} is empty; every split needs some text")
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


def _build(splits: dict[str, str], encode, out_dir: Path, meta: dict) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    # meta.json goes first and comes back last: a crash in between leaves no meta, so nothing is
    # trusted, never an old meta beside a new .bin.
    (out_dir / META_NAME).unlink(missing_ok=True)
    dtype = np.dtype(meta["dtype"])
    for name, text in splits.items():
        try:
            ids = np.asarray(encode(text), dtype=np.int64)  # (N,)
        except ValueError as err:  # e.g. a character the vocabulary lacks, a special token
            raise DataError(f"the {name} split cannot be encoded with this tokenizer: {err}") from None
        if ids.size == 0:
            raise DataError(f"split {name!r} encodes to no tokens; check the tokenizer and the text")
        if ids.min() < 0 or ids.max() >= meta["vocab_size"]:
            raise ValueError(f"split {name!r}: the tokenizer produced id {int(ids.max())} (or a negative "
                             f"one), outside range(0, vocab_size={meta['vocab_size']}); its vocab_size is wrong")
        write_bytes_atomic(out_dir / f"{name}.bin", ids.astype(dtype).tobytes())
        meta["splits"][name]["num_tokens"] = int(ids.size)
    write_bytes_atomic(out_dir / META_NAME, (json.dumps(meta, indent=1) + "\n").encode("utf-8"))
    return meta


def fingerprint_tokenizer(tokenizer) -> str:
    """sha256 over the files ``tokenizer.save`` writes: equal for tokenizers that encode alike."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save(folder)
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def prepare_lm_data(path: str | None, tokenizer_kind: str, vocab_size: int, val_fraction: float, block_size: int,
                    special_tokens: str = "raise"):
    """train_gpt.py's data: (tokenizer, {split: token array}), made once and reused while the text and
    tokenizer are unchanged. path None: Shakespeare's plays."""
    texts = load_corpus(path, val_fraction, block_size)
    tokenizer = lm_tokenizer(tokenizer_kind, vocab_size, texts)
    return tokenizer, lm_token_files(texts, tokenizer, block_size, special_tokens)


def lm_tokenizer(kind: str, vocab_size: int, texts: dict[str, str]):
    """The tokenizer of a language-modelling run, trained (and cached) on its texts or fetched by name."""
    # A character vocabulary must cover the validation text too; a learned one sees only training text.
    vocab_text = texts["train"] + texts["val"] if kind == "char" else texts["train"]
    return cached_tokenizer(kind, vocab_text, vocab_size)


def lm_token_files(texts: dict[str, str], tokenizer, block_size: int, special_tokens: str = "raise"):
    """{split: token array} of the texts, cached under <cache>/tokens/. special_tokens: what a special-token
    string such as <|endoftext|> in the text becomes with a BPE tokenizer (see BPETokenizer.encode)."""
    fingerprint = fingerprint_tokenizer(tokenizer)
    encode = tokenizer.encode
    if isinstance(tokenizer, BPETokenizer):
        fingerprint = hashlib.sha256(f"{fingerprint}\0special={special_tokens}".encode()).hexdigest()
        encode = _bpe_encoder(tokenizer, special_tokens)
    tokens = prepare_token_files(texts, tokenizer, cache_dir() / "tokens" / fingerprint[:16], fingerprint, encode)
    for split, ids in tokens.items():
        if len(ids) <= block_size:
            raise DataError(f"the {split} split has only {len(ids)} tokens, fewer than block_size + 1 = "
                            f"{block_size + 1}; use a longer text or a smaller --block_size")
    return tokens


def _bpe_encoder(tokenizer, special_tokens: str):
    """tokenizer.encode with the special-token mode of --special_tokens, naming that flag if it refuses."""
    def encode(text: str) -> list[int]:
        try:
            return tokenizer.encode(text, special=special_tokens)
        except ValueError as err:
            raise DataError(f"{err} (on the command line: --special_tokens allow, or --special_tokens text)") from None
    return encode
