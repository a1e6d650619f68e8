"""Atomic writes: a reader sees the old file (or folder) or the whole new one, never half of one.

The recipe is the same everywhere: write under a temporary name in the same folder, flush it to
disk, then rename it over the target. A rename within one file system is atomic, so a crash, a
kill -9 or a full disk part-way leaves the previous version readable and at worst a temporary name
behind (hidden, with the writer's pid, so two processes never share one).

    write_file_atomic(path, lambda tmp: np.save(tmp, array))    any writer that takes a path
    write_bytes_atomic(path, data), write_text_atomic(path, text)
    replace_folder_atomic(folder, lambda tmp: ...)             a whole folder, e.g. a checkpoint
"""

import os
import shutil
from pathlib import Path


def temporary_name(target: Path) -> Path:
    """A hidden name beside target, unique to this process: .<name>.<pid>.tmp"""
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def write_file_atomic(path, write) -> Path:
    """Call write(tmp_path) to write the file, flush it to disk, then rename it to path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when write or the rename failed
    return path


def write_bytes_atomic(path, data: bytes) -> Path:
    return write_file_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path, text: str) -> Path:
    return write_file_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def replace_folder_atomic(folder, write) -> Path:
    """Call write(tmp_folder) to fill a fresh folder, flush it, then swap it in for folder.

    Two renames: folder -> folder.old, then tmp -> folder. Between them only folder.old exists, so a
    reader that finds no folder should look for folder.old (see minilm/training/checkpoint.py).
    """
    folder = Path(folder)
    tmp, old = temporary_name(folder), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        write(tmp)
        for path in tmp.rglob("*"):
            if path.is_file():
                _fsync(path)
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only left when write or a rename failed
    shutil.rmtree(old, ignore_errors=True)
    return folder


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
