"""Resume is exact whenever the signal comes: Ctrl-C and SIGTERM stop the run at a step boundary (never inside
optimizer.step() or a save), a second Ctrl-C leaves at once with the last checkpoint whole, and under DDP/FSDP
a signal that reaches one process stops all of them at the same step. bench/bench_interrupts.py runs many more
random trials through train_gpt.py."""

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading

import psutil
import pytest
import torch

from common.errors import EXIT_INTERRUPTED, run_command
from distributed_runs import FLAGS, REPO, free_port, write_text
from minilm.training.checkpoint import load_checkpoint
from minilm.training.metrics_log import MetricsLog
from minilm.training.trainer import Trainer, seed_everything
from test_trainer import ToyTask, tiny_gpt, train_config

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = dict(max_iters=12, eval_interval=4, log_interval=4)


def trainer(out_dir, task, **overrides):
    seed_everything(0)
    return Trainer(tiny_gpt(), task, train_config(out_dir, **STEPS, **overrides), {"model_class": "GPT"})


class SignalledTask(ToyTask):
    """Sends a signal to this process from another thread `delay` seconds after the k-th training loss began,
    so that it lands at a random moment of step k or k+1 whatever the machine's speed. Outside the Trainer's
    own handler a signal goes to one that only records it (a late one cannot stop pytest)."""

    def __init__(self, k, delay, signum):
        super().__init__()
        self.k, self.delay, self.signum, self.timer = k, delay, signum, None

    def loss(self, model, batch):
        if model.training and self.train_calls + 1 == self.k:
            self.timer = threading.Timer(self.delay, os.kill, (os.getpid(), self.signum))
            self.timer.start()
        return super().loss(model, batch)

    @contextlib.contextmanager
    def armed(self):
        previous = signal.signal(self.signum, lambda *args: None)
        try:
            yield
        finally:
            if self.timer is not None:
                self.timer.cancel()
                self.timer.join()
            signal.signal(self.signum, previous)


def final_state(out_dir):
    """The weights and the optimizer's per-parameter state in out_dir/ckpt."""
    weights, config, state = load_checkpoint(out_dir / "ckpt")
    return weights, state["optimizer"]["state"], config["step"]


def assert_bitwise_equal(a, b):
    weights_a, moments_a, step_a = a
    weights_b, moments_b, step_b = b
    assert step_a == step_b
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name
    assert moments_a.keys() == moments_b.keys()
    for i in moments_a:
        for key in moments_a[i]:  # step, exp_avg, exp_avg_sq
            assert torch.equal(moments_a[i][key], moments_b[i][key]), (i, key)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run: its final state, and the seconds one step takes (as its log says)."""
    out_dir = tmp_path_factory.mktemp("straight")
    trainer(out_dir, ToyTask()).run()
    step_ms = [row["ms_per_step"] for row in MetricsLog(out_dir / "metrics.jsonl").rows() if "ms_per_step" in row]
    return final_state(out_dir), max(step_ms) / 1000


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_signal_at_a_random_moment_resumes_to_bitwise_equal_weights_and_moments(tmp_path, straight, seed):
    """The signal lands wherever the delay puts it: in a forward or backward pass, in optimizer.step(), in an
    evaluation or a checkpoint save. The resumed run must end exactly where the uninterrupted one did."""
    rng = random.Random(seed)
    task = SignalledTask(k=rng.randint(1, STEPS["max_iters"] - 3), delay=rng.uniform(0, 1) * straight[1],
                         signum=rng.choice([signal.SIGTERM, signal.SIGINT]))
    run = trainer(tmp_path, task)
    with task.armed(), pytest.raises(KeyboardInterrupt):  # Terminated is one too
        run.run()
    stopped_at = final_state(tmp_path)[2]
    assert 0 < stopped_at < STEPS["max_iters"]
    trainer(tmp_path, ToyTask(), resume=True).run()
    assert_bitwise_equal(final_state(tmp_path), straight[0])


class CtrlCTwice(ToyTask):
    """Presses Ctrl-C twice in the k-th training loss: the second press leaves at once, inside the step."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def loss(self, model, batch):
        loss = super().loss(model, batch)
        if model.training and self.train_calls == self.at:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
        return loss


def test_a_second_ctrl_c_leaves_at_once_and_keeps_the_last_checkpoint_whole(tmp_path, straight, capsys):
    status = run_command(lambda argv: trainer(tmp_path, CtrlCTwice(at=6)).run())  # in step 6; eval at 4
    assert status == EXIT_INTERRUPTED
    assert "left at once during step 6" in capsys.readouterr().out
    assert final_state(tmp_path)[2] == 4  # nothing written after the evaluation at step 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "ckpt", "metrics.jsonl", "metrics.png", "run.lock"]
    trainer(tmp_path, ToyTask(), resume=True).run()
    assert_bitwise_equal(final_state(tmp_path), straight[0])


def test_a_signal_during_the_last_step_lets_the_finished_run_end_normally(tmp_path, straight):
    class CtrlCInLastStep(ToyTask):
        def loss(self, model, batch):
            loss = super().loss(model, batch)
            if model.training and self.train_calls == STEPS["max_iters"]:
                signal.raise_signal(signal.SIGINT)
            return loss

    trainer(tmp_path, CtrlCInLastStep()).run()  # no KeyboardInterrupt: there was nothing left to stop
    assert_bitwise_equal(final_state(tmp_path), straight[0])


# ---- DDP and FSDP: one process signalled, all stop at the same step ------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("parallel", [[], ["--fsdp"]], ids=["ddp", "fsdp"])
def test_sigterm_to_one_process_stops_all_at_the_same_step_and_saves_it(tmp_path, parallel):
    """SIGTERM reaches rank 1 only (rank 0 writes the checkpoint): both stop at the step they agree on, rank 0
    saves it (under FSDP both gather it), and no process is left waiting in a collective."""
    text = write_text(tmp_path / "text.txt")
    flags = [*FLAGS, "--max_iters", "100000", "--eval_interval", "100000", "--log_interval", "1"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "train_gpt.py", "--data", str(text),
               "--out_dir", str(tmp_path / "out"), *parallel, "--batch_size", "2", *flags]
    env = {**os.environ, "MINILM_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(command, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
    try:
        lines = []
        for line in launcher.stdout:  # wait until it trains
            lines.append(line)
            if line.startswith("step"):
                break
        rank1 = [p for p in psutil.Process(launcher.pid).children() if p.environ().get("RANK") == "1"]
        assert rank1, "".join(lines)
        rank1[0].send_signal(signal.SIGTERM)
        out = "".join(lines) + launcher.communicate(timeout=120)[0]
    finally:
        launcher.kill()
    stopped = [line for line in out.splitlines() if "terminated (SIGTERM) at step" in line]
    assert stopped, out[-3000:]
    step = int(stopped[0].split("at step ")[1].split(":")[0])
    assert load_checkpoint(tmp_path / "out" / "ckpt")[1]["step"] == step
    assert "exitcode  : 143" in out, out[-3000:]  # (torchrun then ends the other one with its own SIGTERM)
