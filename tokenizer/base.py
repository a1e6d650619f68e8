"""The interface every minilm tokenizer shares, and the file handling they all use.

A tokenizer turns text into a list of integer ids and back. Every tokenizer here
  - encodes with ``encode(text) -> list[int]`` and decodes with ``decode(ids) -> str``;
  - says how many ids exist (``vocab_size``) and which ids are special (``special_ids``);
  - saves itself to a folder as ``tokenizer.json`` whose ``"kind"`` field names the class that reads it
    back (``load_tokenizer`` in ``tokenizer/factory.py`` dispatches on it), plus any files it needs.
"""

import json
from abc import ABC, abstractmethod
from pathlib import Path

from common.atomic import write_text_atomic
from common.errors import UserError

CONFIG_NAME = "tokenizer.json"


class TokenizerFileError(UserError, ValueError):
    """A saved tokenizer is missing, unreadable or inconsistent."""


class Tokenizer(ABC):
    kind: str = ""  # written to tokenizer.json; each subclass sets its own

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Text to ids."""

    @abstractmethod
    def decode(self, ids) -> str:
        """Ids to text."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct ids: every id is in range(vocab_size)."""

    @property
    def special_ids(self) -> dict[str, int]:
        """Special token string -> id (empty when the tokenizer has none)."""
        return {}

    @abstractmethod
    def save(self, folder) -> None:
        """Write tokenizer.json (with "kind") and any other files into ``folder``."""

    @classmethod
    @abstractmethod
    def load(cls, folder) -> "Tokenizer":
        """Read back what ``save`` wrote."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def check_ids(ids, vocab_size: int) -> list[int]:
    """``ids`` (a list, tuple, numpy array or tensor) as a list of ints, each checked to be in range."""
    ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    if ids and (min(ids) < 0 or max(ids) >= vocab_size):
        bad = next(i for i in ids if not 0 <= i < vocab_size)
        raise ValueError(f"id {bad} is not in range(0, {vocab_size}); was it made by another tokenizer?")
    return ids


def write_config(folder, config: dict) -> None:
    """Create ``folder`` and write ``config`` (which must name its "kind") as tokenizer.json."""
    if "kind" not in config:
        raise ValueError("a tokenizer config needs a 'kind' field so load_tokenizer can dispatch on it")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / CONFIG_NAME, json.dumps(config, ensure_ascii=False, indent=1) + "\n")


def read_config(folder, kind: str | None = None) -> dict:
    """Read tokenizer.json from ``folder``; check its "kind" when ``kind`` is given."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise TokenizerFileError(f"{path} does not exist: pass the folder a tokenizer was saved to")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TokenizerFileError(f"{path} is not valid JSON ({err}); the file is corrupt, save it again") from None
    if not isinstance(config, dict) or not isinstance(config.get("kind"), str):
        raise TokenizerFileError(f"{path} has no string 'kind' field; the file is corrupt, save it again")
    if kind is not None and config["kind"] != kind:
        raise TokenizerFileError(f"{path} holds a {config['kind']!r} tokenizer, not {kind!r}; "
                                 "use load_tokenizer(folder), which picks the right class")
    return config


def require(config: dict, field: str, types, where) -> object:
    """Return ``config[field]``, raising TokenizerFileError when it is missing or of the wrong type."""
    value = config.get(field)
    if not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise TokenizerFileError(f"{where}: field {field!r} is missing or not a {wanted}; "
                                 "the file is corrupt, save the tokenizer again")
    return value
