"""The default corpus: Shakespeare's 38 plays as plain text, in the style of nanoGPT's tinyshakespeare.

The plays come as Markdown from the ``shakespeare-plays`` asset (see data/assets.py), one file per play
under ``<genre>/<play>.md``. A speech there looks like

    **HAMLET**
    To be, or not to be: that is the question:
    Whether 'tis nobler in the mind to suffer

(each verse line but the last ends in two spaces, a Markdown line break). ``play_to_text`` turns it into

    HAMLET:
    To be, or not to be: that is the question:
    Whether 'tis nobler in the mind to suffer

with one blank line between speeches. Headings (title, act, scene) and stage directions are dropped, as
in tinyshakespeare, so the model learns speech and not typesetting. The rules are listed in docs/data.md.

    python -m data.shakespeare      # convert (once, cached) and print the sizes
"""

import hashlib
import json
import re
import sys
from pathlib import Path

from common.atomic import write_text_atomic
from common.errors import ConfigError, DataError, run_command
from data.assets import cache_dir, fetch

_SPEAKER = re.compile(r"\*\*(?P<name>[^*]+)\*\*\s*")  # **HAMLET** (trailing spaces optional)
# A direction inside a speech line: _\[Aside]_ , __\[Awaking]_ , *[Reads.]* , and a broken [Within]_ .
_INLINE_DIRECTION = re.compile(r"_{1,2}\\\[[^\]]*\]_|\*\\?\[[^\]]*\]\*|^\[[^\]]*\]_")
_LIST_ITEM = re.compile(r"\d+\\\. ")  # "1\. A lively flourish of Trumpets." (Henry VIII)
# A few speaker names are split in the sources, the first half a plain line a blank line above
# ("RICHARD" / "**PLANTAGENET**", "Ghost" / "**of Prince Edward**"): joined back into one name.
_SPLIT_SPEAKER = re.compile(r"^(?!OF )([A-Z][A-Za-z']*|[A-Z][A-Z' ]*[A-Z]) *\n(?: *\n)+\*\*", re.MULTILINE)
# Lines printed as text that are labels or running heads, not speech.
_LABELS = {"SONG.", "THE SONG.", "EPILOGUE", "DUMB SHOW.", "SPOKEN BY PROSPERO", "LOVE'S LABOURS LOST",
           "CYMBELINE", "OF EPHESUS"}
_ESCAPE = re.compile(r"\\([^\w\s])")  # Markdown escapes: \-- \. \[


def play_to_text(markdown: str) -> str:
    """Convert one play from the asset's Markdown to plain ``Speaker:`` text (see the module docstring)."""
    speeches: list[list[str]] = []  # each: ["NAME:", line, line, ...]
    in_direction = False  # inside a stage direction that spans several lines
    in_list = False  # inside a numbered list, which in these plays is a procession: a direction
    markdown = _SPLIT_SPEAKER.sub(r"**\1 ", markdown)
    for raw in markdown.splitlines():
        line = raw.rstrip()  # also drops the two-space verse line break
        if not line:
            in_direction = in_list = False  # neither spans a blank line
            continue
        if in_direction or _opens_direction(line):
            in_direction = not line.endswith(("_", "*"))
            continue
        if in_list or _LIST_ITEM.match(line):
            in_list = True
            continue
        if line.startswith("#"):  # title, act or scene heading
            continue
        speaker = _SPEAKER.fullmatch(line)
        if speaker:
            speeches.append([speaker["name"].strip() + ":"])
            continue
        line = _clean_speech_line(line)
        if line in _LABELS:
            continue
        # Text after a blank line or a direction, with no new speaker, goes on with the same speech.
        if line and speeches:
            speeches[-1].append(line)
    kept = ["\n".join(speech) for speech in speeches if len(speech) > 1]  # a speaker with words
    return "\n\n".join(kept) + "\n" if kept else ""


def _opens_direction(line: str) -> bool:
    """A stage direction is a line in _italics_ (or *italics* in one play); **bold** is a speaker."""
    return line.startswith("_") or (line.startswith("*") and not line.startswith("**"))


def _clean_speech_line(line: str) -> str:
    line = _INLINE_DIRECTION.sub("", line)
    line = _ESCAPE.sub(r"\1", line)
    line = line.replace("&amp;", "&").replace("\u2014", "--")  # one play uses an em dash, the rest '--'
    return line.strip()


def load_plays() -> dict[str, str]:
    """Every play as plain text, keyed by name ("hamlet", "king-lear", ...), sorted by name.

    The conversion is made once and cached in the minilm cache folder. The cache is keyed by the sha256
    of the Markdown sources and of this file's own code, so editing the rules here remakes it.
    """
    sources = _read_sources()
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for name, markdown in sources.items():
        digest.update(f"{name}\0{markdown}\0".encode())
    cached = cache_dir() / "shakespeare" / f"plays-{digest.hexdigest()[:16]}.json"
    if cached.exists():
        return json.loads(cached.read_text(encoding="utf-8"))
    plays = {name: play_to_text(markdown) for name, markdown in sources.items()}
    write_text_atomic(cached, json.dumps(plays, ensure_ascii=False))
    for stale in cached.parent.glob("plays-*.json"):  # conversions by earlier rules or sources
        if stale != cached:
            stale.unlink(missing_ok=True)
    return plays


def _read_sources() -> dict[str, str]:
    folder = fetch("shakespeare-plays")
    paths = sorted(folder.glob("*/*.md"), key=lambda p: p.stem)  # <genre>/<play>.md
    if not paths:
        raise FileNotFoundError(f"no <genre>/<play>.md files under {folder}; delete that folder so "
                                "data.assets.fetch('shakespeare-plays') extracts it again")
    return {p.stem: p.read_text(encoding="utf-8") for p in paths}


def split_play_names(names: list[str], val_fraction: float = 0.1) -> tuple[list[str], list[str]]:
    """Hold out whole plays for validation: ``round(len(names) * val_fraction)`` of them (at least
    one), spread evenly through the sorted names. Returns (train_names, val_names), both sorted."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction={val_fraction}: must be strictly between 0 and 1, e.g. 0.1")
    names = sorted(names)
    n_val = max(1, round(len(names) * val_fraction))
    if n_val >= len(names):
        raise DataError(f"val_fraction={val_fraction} leaves no training play out of {len(names)}; "
                        "use a smaller val_fraction")
    # The middle of each of n_val equal stretches, e.g. 38 plays, 4 held out: positions 4, 14, 23, 33.
    val_positions = {int((i + 0.5) * len(names) / n_val) for i in range(n_val)}
    val = [name for i, name in enumerate(names) if i in val_positions]
    train = [name for i, name in enumerate(names) if i not in val_positions]
    return train, val


def shakespeare_splits(val_fraction: float = 0.1) -> tuple[str, str]:
    """(train_text, val_text): the plays of each split joined in name order, a blank line between."""
    plays = load_plays()
    train_names, val_names = split_play_names(list(plays), val_fraction)
    return "\n".join(plays[n] for n in train_names), "\n".join(plays[n] for n in val_names)


def main(argv=None) -> None:
    """`python -m data.shakespeare`: convert the plays (once, cached) and print the sizes of the splits."""
    if argv:
        raise ConfigError(f"python -m data.shakespeare takes no arguments, got {' '.join(argv)}")
    plays = load_plays()
    train_names, val_names = split_play_names(list(plays))
    train, val = shakespeare_splits()
    print(f"{len(plays)} plays, {sum(len(t) for t in plays.values()):,} characters")
    print(f"train: {len(train_names)} plays, {len(train):,} characters")
    print(f"val:   {len(val_names)} plays, {len(val):,} characters ({', '.join(val_names)})")


if __name__ == "__main__":
    sys.exit(run_command(main, sys.argv[1:]))
