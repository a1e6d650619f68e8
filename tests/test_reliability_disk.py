"""What the disk can do to a run, and what it keeps: a full disk while a checkpoint, a metrics row or
metrics.png is written; a crash between the two renames of a save (only ckpt.old is left); a torn or
garbage line in metrics.jsonl. Each keeps the last checkpoint whole and ends in an error line, a warning
or an exact resume, never a traceback."""

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

from common import atomic
from common.errors import CheckpointError, run_command
from minilm.training import checkpoint
from minilm.training.checkpoint import checkpoint_to_resume, load_checkpoint
from minilm.training.stopping import DiskFull
from test_reliability import cache, gpt_run, trainer  # noqa: F401  (cache is a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- a full disk -----------------------------------------------------------------------------------------

def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


class FullDiskFile:
    """A file whose writes fail with ENOSPC once `room` bytes are written, as on a full disk."""

    def __init__(self, path, room):
        self.file, self.room = open(path, "wb"), room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def full_weights(monkeypatch):  # what safetensors raises on a full disk
    def save_file(state_dict, path):
        Path(path).write_bytes(b"\0" * 10)
        raise checkpoint.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    monkeypatch.setattr(checkpoint, "save_file", save_file)


def full_train_state(monkeypatch):  # the real torch.save, into a file that runs out of room
    monkeypatch.setattr(checkpoint, "open", lambda path, mode: FullDiskFile(path, room=100), raising=False)


def full_tokenizer(run):  # the files a script adds to the checkpoint (its tokenizer)
    run.write_extra = no_space


@pytest.mark.parametrize("fill", ["weights", "train_state", "tokenizer"])
def test_a_full_disk_keeps_the_previous_checkpoint_and_leaves_no_partial_folder(tmp_path, monkeypatch, fill):
    run = trainer(tmp_path / "out")
    run.save(tmp_path / "out" / "ckpt")
    before = (tmp_path / "out" / "ckpt" / "model.safetensors").read_bytes()
    {"weights": lambda: full_weights(monkeypatch), "train_state": lambda: full_train_state(monkeypatch),
     "tokenizer": lambda: full_tokenizer(run)}[fill]()
    with pytest.raises(DiskFull, match="no space left on the device.*previous checkpoint there is intact"):
        run.save(tmp_path / "out" / "ckpt")
    assert (tmp_path / "out" / "ckpt" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ckpt", "run.lock"]


@pytest.mark.skipif(not (Path("/dev/full").exists() and Path("/dev/full").is_char_device()),
                    reason="/dev/full, the kernel's always-full device, is Linux's")
def test_torch_save_on_a_full_device_is_an_oserror_not_torchs_enforce_fail():
    """Given a path, torch.save writes from C++ and reports a full disk as RuntimeError("[enforce fail at
    inline_container.cc ...] unexpected pos"); the checkpoint's writer goes through Python's file instead."""
    with pytest.raises(OSError) as caught:
        checkpoint._save_train_state({"moments": torch.zeros(100_000)}, Path("/dev/full"))
    assert caught.value.errno == errno.ENOSPC


def test_a_full_disk_while_appending_metrics_stops_with_an_error_naming_the_last_checkpoint(tmp_path, monkeypatch,
                                                                                            capsys):
    run = trainer(tmp_path / "out", max_iters=8)  # evaluations (and checkpoints) at steps 3 and 6
    real_append = run.metrics.append

    def append(row):
        if row["step"] == 7:
            no_space()
        real_append(row)

    monkeypatch.setattr(run.metrics, "append", append)
    assert run_command(lambda argv: run.run()) == 2
    err = capsys.readouterr().err
    assert "no space left on the device while appending to" in err and "(step 6) is intact" in err
    assert load_checkpoint(tmp_path / "out" / "ckpt")[1]["step"] == 6


def test_a_full_disk_when_drawing_metrics_png_warns_and_the_run_ends_normally(tmp_path, monkeypatch, capsys):
    import matplotlib.figure
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", no_space)
    trainer(tmp_path / "out").run()
    assert "metrics.png was not drawn ([Errno 28] No space left on device)" in capsys.readouterr().out
    assert not list((tmp_path / "out").glob("*metrics.png*"))  # neither a picture nor a temporary file


# ---- a crash between the two renames of a save leaves only ckpt.old ------------------------------------------

def crash_between_the_renames(monkeypatch, folder):
    """The next save of `folder` dies after renaming folder -> folder.old, before renaming the new one in."""
    real_replace = atomic.os.replace

    def replace(src, dst):
        if Path(dst) == folder:
            raise KeyboardInterrupt  # kill -9 at this instant: only folder.old is left
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)


def test_resume_after_a_crash_between_the_renames_reads_ckpt_old_tokenizer_included(tmp_path, cache, monkeypatch,
                                                                                      capsys):
    assert gpt_run(tmp_path, tmp_path / "out", "--max_iters", "15") == 0
    crash_between_the_renames(monkeypatch, tmp_path / "out" / "ckpt")
    assert gpt_run(tmp_path, tmp_path / "out", "--resume", "--max_iters", "30") == 130  # dies saving step 30
    monkeypatch.undo()
    assert not (tmp_path / "out" / "ckpt").exists() and (tmp_path / "out" / "ckpt.old" / "tokenizer").is_dir()
    capsys.readouterr()
    assert gpt_run(tmp_path, tmp_path / "out", "--resume", "--max_iters", "30") == 0
    assert f"resumed from {tmp_path / 'out' / 'ckpt.old'} at step 15" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "out" / "ckpt")[1]["step"] == 30
    assert not (tmp_path / "out" / "ckpt.old").exists()  # the next save completed the swap


def test_the_checkpoint_to_resume_is_ckpt_when_whole_else_a_whole_ckpt_old(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(CheckpointError, match=f"no checkpoint at {out / 'ckpt'}"):
        checkpoint_to_resume(out)
    trainer(out).save(out / "ckpt")
    assert checkpoint_to_resume(out) == out / "ckpt"
    (out / "ckpt").rename(out / "ckpt.old")
    assert checkpoint_to_resume(out) == out / "ckpt.old"
    shutil.copytree(out / "ckpt.old", out / "ckpt")
    (out / "ckpt" / "train_state.pt").unlink()  # a ckpt/ that cannot be resumed
    assert checkpoint_to_resume(out) == out / "ckpt.old"


# ---- a damaged metrics.jsonl ---------------------------------------------------------------------------------

def test_resume_drops_a_torn_last_metrics_line_and_says_so(tmp_path, capsys):
    trainer(tmp_path / "out").run()
    log = tmp_path / "out" / "metrics.jsonl"
    rows = log.read_text()
    log.write_text(rows + '{"step": 9, "loss": 2.7')  # an append cut short
    capsys.readouterr()
    trainer(tmp_path / "out", resume=True, max_iters=9).run()
    assert "was cut short (an append that did not finish); it is dropped" in capsys.readouterr().out
    assert log.read_text().startswith(rows) and log.read_text().endswith("}\n")
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()][-2:] == [9, 9]  # step 9 and its eval


def test_resume_refuses_a_garbage_line_in_the_middle_of_metrics_naming_it(tmp_path, capsys):
    """Appends can only tear the last line; a bad line elsewhere was written by something else, so resume
    asks rather than drop it when it rewrites the file."""
    trainer(tmp_path / "out").run()
    log = tmp_path / "out" / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:2]) + "not json\n" + "".join(lines[2:]))
    before = log.read_bytes()
    assert run_command(lambda argv: trainer(tmp_path / "out", resume=True, max_iters=9).run()) == 2
    assert f"{log}, line 3, is not a row of metrics ('not json')" in capsys.readouterr().err
    assert log.read_bytes() == before


def test_the_metrics_rewrite_on_resume_is_atomic(tmp_path, monkeypatch):
    trainer(tmp_path / "out").run()
    log = tmp_path / "out" / "metrics.jsonl"
    log.write_text(log.read_text() + '{"step": 9, "loss": 2.5}\n')  # logged after the checkpoint: resume drops it
    before = log.read_bytes()

    def crash(src, dst):
        raise KeyboardInterrupt  # killed just before the new file is renamed in

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "out", resume=True, max_iters=9)  # rewrites metrics.jsonl as it resumes
    assert log.read_bytes() == before
    assert not list((tmp_path / "out").glob(".metrics.jsonl*"))
