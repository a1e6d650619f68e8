"""What a command may write over: the one check every command that writes makes, before any work.

    guard_output(out, "OUT", COMMAND, inputs={"CKPT out/gpt-small": ckpt}, overwrite=args.overwrite)

It refuses, with a UserError that names the path and the flag that would allow it (`error: ...`, exit 2):

    1. an output that is, holds or lies inside one of the command's inputs     never, --overwrite or not
    2. a checkpoint or run folder, or a path inside a checkpoint               unless --overwrite (or, for a
                                                                               training run, --resume)
    3. an existing file, or a folder that holds anything, which is not this    unless --overwrite
       command's own earlier output

"Its own earlier output" is recognised by a marker, so that running a command again over what it wrote
needs no flag: a folder holds written_by.json naming the command (mark_output writes it), a page holds the
command's generator tag, a training run's out_dir holds the run.lock of a run that never saved a checkpoint.
A checkpoint is never "own earlier output": other work points at it (a fine-tune records its sha256), so
replacing one always takes --overwrite, whoever wrote it.

Only the names of files are read (and a page's first bytes), never a model: the check is instant, and it
imports only the standard library, like all of common/. The writes themselves stay atomic (common/atomic.py).
"""

import json
import os
from pathlib import Path

from .atomic import write_text_atomic
from .errors import ConfigError
from .paths import check_creatable

FOLDER, FILE, RUN = "folder", "file", "run"  # what a command writes: a folder, one file, a training run
MANIFEST = "written_by.json"  # {"command": ...}: the marker of a folder a command wrote (mark_output)
RUN_FILES = ("ckpt", "ckpt.old", "best", "best.old", "metrics.jsonl")  # what a training run keeps
RUN_LOCK = "run.lock"  # the first thing a training run writes (minilm/training/run_dir.py)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json", "train_state.pt")  # any of them makes a folder a checkpoint
TAG_BYTES = 1 << 16  # how much of a file is searched for its generator tag (it sits in the page's <head>)


class OutputRefused(ConfigError):
    """An output flag names a place the command must not write (see the module docstring): a UserError."""


def guard_output(out, flag: str, command: str, *, inputs: dict | None = None, overwrite: bool = False,
                 resume: bool = False, kind: str = FOLDER, tag: str | None = None) -> Path:
    """Check that `command` may write `out` (see the module docstring); returns out as a Path.

    flag: how the command line names out ("OUT", "--out_dir", "-o"); inputs: {what the message calls an
    input, e.g. "CKPT out/gpt-small": its path}, None and paths that do not exist skipped; kind: FOLDER,
    FILE or RUN (a training run's out_dir, which --resume may continue); tag: text that every file this
    command writes holds (kind FILE), e.g. the generator <meta> of a page."""
    if str(out) == "":  # Path("") is the current folder: never what a user meant
        raise OutputRefused(f"{flag} is empty; name the {'file' if kind == FILE else 'folder'} to write")
    out = Path(out)
    _refuse_inputs(out, flag, inputs or {})
    check_creatable(out, flag)  # under /proc, under a file, on a read-only disk: refused now (common/paths.py)
    if kind == RUN and resume:
        return out  # the run continues in its own out_dir; resuming checks that a checkpoint is there
    _refuse_wrong_kind(out, flag, kind)
    if overwrite:
        return out
    _refuse_checkpoints(out, flag, kind)
    _refuse_others(out, flag, command, kind, tag)
    return out


def mark_output(folder, command: str) -> Path:
    """Write the marker (MANIFEST) that makes folder this command's own output: run again, it needs no flag."""
    return write_text_atomic(Path(folder) / MANIFEST, json.dumps({"command": command}) + "\n")


def run_files(folder) -> list[str]:
    """The names of RUN_FILES that folder holds: a training run's, if there are any."""
    return [name for name in RUN_FILES if (Path(folder) / name).exists()]


def is_checkpoint(folder) -> bool:
    """A folder of model weights: minilm's checkpoints (and ckpt.old, best.old) and Hugging Face folders."""
    return any((Path(folder) / name).is_file() for name in WEIGHT_FILES)


# ------------------------------------------------------------------------------------------ the rules

def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))  # symbolic links followed, as the write would follow them


def _refuse_inputs(out: Path, flag: str, inputs: dict) -> None:
    """Rule 1: never is, holds or lies inside an input, whatever the flags."""
    target = _real(out)
    for label, path in inputs.items():
        if path is None or str(path) == "" or not Path(path).exists():
            continue  # e.g. an asset's name, not a path: nothing on disk to lose
        source = _real(Path(path))
        relation = "is" if target == source else "holds" if source.is_relative_to(target) else \
            "lies inside" if target.is_relative_to(source) else None
        if relation:
            shown = "" if label.endswith(str(path)) else f" ({path})"
            raise OutputRefused(f"{flag} {out} {relation} {label}{shown}, an input of this command: writing there "
                                f"would overwrite {label}; choose {_a(flag)} outside it (no flag allows this, "
                                "--overwrite neither)")


def _refuse_wrong_kind(out: Path, flag: str, kind: str) -> None:
    if kind == FILE and out.is_dir():
        raise OutputRefused(f"{flag} {out} is a folder; name the file to write, e.g. {out / 'page.html'}")
    if kind != FILE and out.exists() and not out.is_dir():
        raise OutputRefused(f"{flag} {out} is a file, not a folder; pass a new folder to write into")


def _refuse_checkpoints(out: Path, flag: str, kind: str) -> None:
    """Rule 2: a checkpoint or run folder, or a path inside a checkpoint, only with --overwrite (--resume)."""
    found = run_files(out) if out.is_dir() else []
    if found and kind == RUN:
        raise OutputRefused(f"{flag} {out} already holds a run ({', '.join(found)}); continue it with --resume, "
                            f"or start afresh with --overwrite (which removes them), or choose another {flag}")
    if found:
        raise OutputRefused(f"{flag} {out} holds a training run ({', '.join(found)}); choose a new folder, or "
                            "pass --overwrite to replace it")
    where = Path(os.path.abspath(out))
    holder = next((folder for folder in [where, *where.parents] if folder.is_dir() and is_checkpoint(folder)), None)
    if holder == where:
        raise OutputRefused(f"{flag} {out} is a checkpoint folder (it holds model weights); choose a new folder, "
                            "or pass --overwrite to replace it")
    if holder is not None:
        raise OutputRefused(f"{flag} {out} lies inside the checkpoint folder {holder}; choose a folder outside "
                            "it, or pass --overwrite to write there")


def _refuse_others(out: Path, flag: str, command: str, kind: str, tag: str | None) -> None:
    """Rule 3: an existing file or a folder that holds anything, unless this command wrote it."""
    if kind == FILE:
        if out.is_file() and not (tag and _holds_tag(out, tag)):
            raise OutputRefused(f"{flag} {out} is a file that {command} did not write; choose another name, or "
                                "pass --overwrite to replace it")
        return
    if not out.is_dir():
        return
    names = sorted(path.name for path in out.iterdir())
    own = (out / RUN_LOCK).is_file() if kind == RUN else _manifest_command(out) == command
    if names and not own:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise OutputRefused(f"{flag} {out} holds files that {command} did not write ({shown}); choose a new "
                            "or empty folder, or pass --overwrite to write there")


def _manifest_command(folder: Path) -> str | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("command")
    except (OSError, ValueError, AttributeError):  # no marker, or not one this module wrote
        return None


def _holds_tag(path: Path, tag: str) -> bool:
    try:
        with open(path, "rb") as f:
            return tag.encode("utf-8") in f.read(TAG_BYTES)
    except OSError:
        return False


def _a(flag: str) -> str:
    return f"an {flag}" if flag.lstrip("-")[:1].lower() in "aeiou" else f"a {flag}"
