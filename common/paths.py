"""An output path checked before any work: it is not empty and it can be made.

    check_creatable(args.out, "OUT")      error: OUT /proc/x/tok cannot be created: /proc does not allow ...

An empty path would otherwise mean the current folder (Path("") is "."), and a folder under /proc, on a
read-only disk or under a file would fail only when the first file is written, after the work is done.
common/output_guard.py, which every command that writes calls first, calls this; what may be written over
is its question, this one asks only whether the path can be written at all.
"""

import os
import tempfile
from pathlib import Path

from .errors import ConfigError


def check_creatable(path, flag: str) -> Path:
    """path as a Path, or a ConfigError naming flag: the path is empty, or the folder it names (or the folder
    that would hold the file it names) can neither be found nor made there."""
    if not str(path).strip():
        raise ConfigError(f"{flag} is empty; name where to write")
    path = Path(path)
    existing = next(p for p in [path, *path.absolute().parents] if p.exists())
    if existing == path:
        return path
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path} cannot be created: {existing} is a file, not a folder")
    try:  # the one sure test on every file system (as root, os.access says yes to /proc): make a folder there
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".minilm-probe-"))
    except OSError as err:
        raise ConfigError(f"{flag} {path} cannot be created: {existing} does not allow it ({err.strerror}); "
                          "choose a folder you can write to") from None
    return path
