"""A run's out_dir: never clobbered by accident, and written by one run at a time.

    out_dir/ckpt/          the latest checkpoint (resume from it)
    out_dir/best/          the best checkpoint so far (fine-tunes point at it)
    out_dir/metrics.jsonl  every logged step and evaluation
    out_dir/run.lock       held (flock) by the run writing here; it holds that run's pid

A fresh run refuses an out_dir that already holds a run: re-running a command must not replace the
best/ that other work depends on. `--resume` continues it; `--overwrite` starts afresh and says what
it removed. The check is common/output_guard.py's, the one every writing command makes (kind RUN): it
also refuses an out_dir that is, holds or lies inside an input of the run (its --data, --init_from,
--base), and a folder of other files. The lock is an flock, which the kernel releases when the process
ends however it ends, so a crashed run never leaves a stale lock behind.
"""

import fcntl
import os
import shutil
from pathlib import Path

from common.errors import ConfigError
from common.output_guard import RUN, RUN_LOCK, guard_output, run_files

LOCK_NAME = RUN_LOCK  # named in common/output_guard.py with the files of a run (RUN_FILES)


def claim_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> tuple["RunLock", list[str]]:
    """Lock out_dir for this run and check that the run may write there (see the module docstring).
    Returns the lock, to release when the run ends, and the names that overwrite removed."""
    check_out_dir(out_dir, resume, overwrite)  # before the lock creates the folder
    lock = RunLock(out_dir)
    lock.acquire()
    try:
        return lock, prepare_out_dir(out_dir, resume, overwrite)
    except BaseException:
        lock.release()
        raise


def check_out_dir(out_dir: Path, resume: bool, overwrite: bool, inputs: dict | None = None,
                  command: str = "a training run") -> list[str]:
    """Refuse an out_dir this run may not write (common/output_guard.py): inputs are the run's, {"--data
    my.txt": path}. Returns what overwrite would remove. Reads only: scripts call it before preparing data,
    with their inputs, to fail at once; the Trainer calls it again when it claims the out_dir."""
    guard_output(out_dir, "--out_dir", command, inputs=inputs, overwrite=overwrite, resume=resume, kind=RUN)
    return [] if resume else run_files(out_dir)


def prepare_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> list[str]:
    """check_out_dir, then remove what overwrite replaces. Returns the names removed."""
    found = check_out_dir(out_dir, resume, overwrite)
    for name in found:
        path = out_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return found


class RunLock:
    """An exclusive lock on out_dir for the life of a run; a second run gets an error naming the first's pid."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOCK_NAME
        self.file = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(f"--out_dir {self.path.parent} is in use by another run (pid {holder}); wait for it "
                              "to finish, or choose another --out_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.file = handle

    def release(self) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None
