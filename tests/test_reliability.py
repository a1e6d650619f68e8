"""Nothing a user does loses a checkpoint: out_dir safety, one run per out_dir, no checkpoint from a
diverged model, SIGTERM, and a --resume that rebuilds exactly the model and ids it stopped with (signals at
random moments: tests/test_interrupts.py; a full disk, a crash inside a save, a damaged metrics.jsonl:
tests/test_reliability_disk.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import finetune
import train_gpt
from common.errors import CheckpointError, ConfigError, DataError, run_command
from finetune_fixtures import save_gpt_base
from minilm.training.checkpoint import load_checkpoint
from minilm.training.run_dir import RunLock
from minilm.training.trainer import Trainer, TrainingDiverged
from test_train_gpt import TINY_FLAGS, write_text
from test_trainer import ToyTask, tiny_gpt, train_config

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


class NaNEvalTask(ToyTask):
    """ToyTask whose evaluation number eval_nan_at comes out NaN."""

    def __init__(self, eval_nan_at):
        super().__init__()
        self.eval_nan_at = eval_nan_at

    def evaluate(self, model, cfg, device):
        metrics = super().evaluate(model, cfg, device)
        return {name: float("nan") for name in metrics} if self.eval_calls == self.eval_nan_at else metrics


def trainer(out_dir, task=None, **overrides):
    torch.manual_seed(0)
    return Trainer(tiny_gpt(), task or ToyTask(), train_config(out_dir, **overrides), {"model_class": "GPT"})


def gpt_run(tmp_path, out_dir, *flags):
    """train_gpt.py's main on a tiny model, through run_command: (exit status, stderr lines)."""
    os.environ["MINILM_CACHE"] = str(tmp_path / "cache")
    text = write_text(tmp_path / "text.txt") if not (tmp_path / "text.txt").exists() else tmp_path / "text.txt"
    return run_command(train_gpt.main, ["--data", str(text), "--out_dir", str(out_dir), *TINY_FLAGS, *flags])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILM_CACHE", str(tmp_path / "cache"))


# ---- a fresh run never replaces an earlier one ---------------------------------------------------------

def test_a_fresh_run_into_a_used_out_dir_is_refused_naming_both_ways_out(tmp_path, cache, capsys):
    assert gpt_run(tmp_path, tmp_path / "out") == 0
    best_before = (tmp_path / "out" / "best" / "model.safetensors").read_bytes()
    metrics_before = (tmp_path / "out" / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert gpt_run(tmp_path, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"--out_dir {tmp_path / 'out'} already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert (tmp_path / "out" / "best" / "model.safetensors").read_bytes() == best_before
    assert (tmp_path / "out" / "metrics.jsonl").read_text() == metrics_before


def test_overwrite_starts_afresh_and_keeps_no_rows_of_the_old_run(tmp_path, cache):
    assert gpt_run(tmp_path, tmp_path / "out") == 0
    assert gpt_run(tmp_path, tmp_path / "out", "--overwrite", "--max_iters", "10", "--eval_interval", "10") == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert max(row["step"] for row in rows) == 10  # the first run's steps 11-30 are gone


def test_an_out_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        trainer(tmp_path / "file")


def test_finetune_refuses_an_out_dir_that_is_its_base(tmp_path, capsys):
    base = save_gpt_base(tmp_path / "run" / "best")
    before = (base / "model.safetensors").read_bytes()
    for out_dir in (tmp_path / "run", tmp_path / "run" / "best", tmp_path / "run" / "best" / "inside"):
        status = run_command(finetune.main, ["--task", "lm", "--base", str(tmp_path / "run"), "--out_dir",
                                             str(out_dir), "--overwrite", "--device", "cpu"])
        assert status == 2 and "would overwrite the base model" in capsys.readouterr().err, out_dir
    assert (base / "model.safetensors").read_bytes() == before


# ---- one run per out_dir ---------------------------------------------------------------------------------

def test_a_second_run_in_a_locked_out_dir_is_refused_naming_the_pid(tmp_path):
    lock = RunLock(tmp_path / "out")
    lock.acquire()
    try:
        with pytest.raises(ConfigError, match=rf"in use by another run \(pid {os.getpid()}\)"):
            trainer(tmp_path / "out")
    finally:
        lock.release()


def test_a_lock_file_left_by_a_dead_run_does_not_block(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "run.lock").write_text("999999\n")  # no process holds it
    trainer(tmp_path / "out").run()
    assert (tmp_path / "out" / "ckpt").is_dir()


def test_the_lock_is_released_when_the_run_ends(tmp_path):
    trainer(tmp_path / "out").run()
    lock = RunLock(tmp_path / "out")
    lock.acquire()  # would raise if the finished run still held it
    lock.release()


# ---- no checkpoint from a diverged model -----------------------------------------------------------------

def test_a_nan_evaluation_writes_no_checkpoint_and_names_the_step(tmp_path):
    run = trainer(tmp_path / "out", NaNEvalTask(eval_nan_at=2))  # evaluations at steps 3 and 6
    with pytest.raises(TrainingDiverged, match="the evaluation at step 6 gave"):
        run.run()
    _, config, state = load_checkpoint(tmp_path / "out" / "ckpt")
    assert config["step"] == 3 and state["step"] == 3  # the step-3 checkpoint is still the last one


def test_a_nan_first_evaluation_never_becomes_best(tmp_path):
    with pytest.raises(TrainingDiverged):
        trainer(tmp_path / "out", NaNEvalTask(eval_nan_at=1)).run()
    assert not (tmp_path / "out" / "best").exists() and not (tmp_path / "out" / "ckpt").exists()


def test_weights_that_are_not_finite_are_never_saved(tmp_path):
    run = trainer(tmp_path / "out")
    with torch.no_grad():
        run.model.wte.weight[0, 0] = float("inf")
    with pytest.raises(TrainingDiverged, match="wte.weight holds NaN or infinite values"):
        run.save(tmp_path / "out" / "ckpt")
    assert not (tmp_path / "out" / "ckpt").exists()


def test_a_nan_loss_is_a_failure_with_a_nonzero_exit(tmp_path, capsys):
    def main(argv):
        return trainer(tmp_path / "out", ToyTask(nan_at=4)).run()

    assert run_command(main) == 2
    assert "loss is nan at step 4" in capsys.readouterr().err


# ---- SIGTERM (signals at random moments: tests/test_interrupts.py) -------------------------------------

@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_that_resumes_and_exits_143(tmp_path):
    env = {**os.environ, "MINILM_CACHE": str(tmp_path / "cache")}
    text = write_text(tmp_path / "text.txt")
    flags = ["--data", str(text), "--out_dir", str(tmp_path / "out"), *TINY_FLAGS, "--max_iters", "100000",
             "--eval_interval", "100000", "--log_interval", "5"]
    process = subprocess.Popen([sys.executable, "train_gpt.py", *flags], cwd=REPO, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in process.stdout:  # wait until it trains
        if line.startswith("step"):
            break
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "terminated (SIGTERM)" in out + err
    _, config, _ = load_checkpoint(tmp_path / "out" / "ckpt")
    assert config["step"] >= 5
    resumed = subprocess.run([sys.executable, "train_gpt.py", *flags[:-6], "--resume", "--max_iters",
                              str(config["step"] + 2)], cwd=REPO, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0 and f"at step {config['step']}" in resumed.stdout


# ---- --resume rebuilds what the run was -------------------------------------------------------------------

def test_resume_takes_the_model_config_from_the_checkpoint(tmp_path, cache):
    assert gpt_run(tmp_path, tmp_path / "out", "--n_embd", "48") == 0
    # TINY_FLAGS say --n_embd 32; the checkpoint says 48: given explicitly, that is refused
    with pytest.raises(ConfigError, match=r"--n_embd 32 \(the checkpoint has 48\)"):
        train_gpt.main(["--data", str(tmp_path / "text.txt"), "--out_dir", str(tmp_path / "out"), *TINY_FLAGS,
                        "--resume", "--max_iters", "40"])
    # without the flag the checkpoint's width is used
    flags = [f for f in TINY_FLAGS]
    del flags[flags.index("--n_embd"):flags.index("--n_embd") + 2]
    train_gpt.main(["--data", str(tmp_path / "text.txt"), "--out_dir", str(tmp_path / "out"), *flags,
                    "--resume", "--max_iters", "40"])
    _, config, _ = load_checkpoint(tmp_path / "out" / "ckpt")
    assert config["model"]["n_embd"] == 48 and config["step"] == 40


def test_resume_keeps_the_checkpoint_tokenizer_when_the_text_changed(tmp_path, cache, capsys):
    assert gpt_run(tmp_path, tmp_path / "out") == 0
    saved_vocab = (tmp_path / "out" / "ckpt" / "tokenizer" / "tokenizer.json").read_text()
    text = (tmp_path / "text.txt").read_text()
    (tmp_path / "other.txt").write_text(text[::-1])  # the same characters, another text
    capsys.readouterr()
    train_gpt.main(["--data", str(tmp_path / "other.txt"), "--out_dir", str(tmp_path / "out"), *TINY_FLAGS,
                    "--resume", "--max_iters", "40"])
    assert "the training text differs from the one this run started on" in capsys.readouterr().out
    assert (tmp_path / "out" / "ckpt" / "tokenizer" / "tokenizer.json").read_text() == saved_vocab


def test_resume_on_a_text_with_characters_the_vocabulary_lacks_names_one(tmp_path, cache):
    assert gpt_run(tmp_path, tmp_path / "out") == 0
    text = (tmp_path / "text.txt").read_text()
    (tmp_path / "other.txt").write_text(text.replace("question", "QUESTION"))  # same length, new characters
    with pytest.raises(DataError, match="character 'Q'"):
        train_gpt.main(["--data", str(tmp_path / "other.txt"), "--out_dir", str(tmp_path / "out"), *TINY_FLAGS,
                        "--resume", "--max_iters", "40"])


def test_resume_of_a_bert_checkpoint_with_train_gpt_says_what_it_is(tmp_path, cache):
    assert gpt_run(tmp_path, tmp_path / "out") == 0
    config_path = tmp_path / "out" / "ckpt" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "model_class": "BertForPreTraining"}))
    with pytest.raises(CheckpointError, match=r"is a BERT checkpoint.*python train_bert.py --resume"):
        train_gpt.main(["--out_dir", str(tmp_path / "out"), "--resume", "--device", "cpu"])


def test_resume_with_max_iters_at_the_checkpoint_step_says_there_is_nothing_to_do(tmp_path, cache):
    assert gpt_run(tmp_path, tmp_path / "out") == 0
    with pytest.raises(ConfigError, match=r"is at step 30 already, so --max_iters 30 leaves nothing to do"):
        train_gpt.main(["--data", str(tmp_path / "text.txt"), "--out_dir", str(tmp_path / "out"), *TINY_FLAGS,
                        "--resume"])


def test_a_corpus_with_a_special_token_names_the_flag_that_decides(tmp_path, cache, capsys):
    (tmp_path / "text.txt").write_text(write_text(tmp_path / "plain.txt").read_text() + "<|endoftext|>\n" * 3)
    assert gpt_run(tmp_path, tmp_path / "out", "--tokenizer", "bpe", "--tokenizer_vocab_size", "300") == 2
    assert "--special_tokens allow" in capsys.readouterr().err
    assert gpt_run(tmp_path, tmp_path / "out", "--tokenizer", "bpe", "--tokenizer_vocab_size", "300",
                   "--special_tokens", "allow") == 0
