"""DDP: two processes under torchrun (gloo, CPU) train exactly like one process with the same global batch."""

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train_gpt
from minilm import GPT, GPTConfig


REPO = Path(__file__).resolve().parent.parent
FLAGS = ["--n_layer", "1", "--n_head", "2", "--n_embd", "32", "--block_size", "16", "--max_iters", "8",
         "--lr", "1e-3", "--warmup_iters", "2", "--eval_interval", "4", "--eval_iters", "2",
         "--log_interval", "4", "--device", "cpu", "--progress", "false", "--num_samples", "0"]


pytestmark = [pytest.mark.slow,  # three Python processes (~20 s on 2 busy cores)
              pytest.mark.usefixtures("one_thread")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(out_dir: Path, text: Path, cache: Path, batch_size: int) -> None:
    env = {**os.environ, "MINILM_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               str(REPO / "train_gpt.py"), "--data", str(text), "--out_dir", str(out_dir),
               "--batch_size", str(batch_size), *FLAGS]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def rows(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """(single process, batch 8) and (torchrun, 2 processes x batch 4): their out_dirs."""
    tmp = tmp_path_factory.mktemp("ddp")
    words = "to be or not that is the question whether tis nobler in".split()
    rng = random.Random(0)
    text = tmp / "text.txt"
    text.write_text("\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(300)))
    single, ddp = tmp / "single", tmp / "ddp"
    # The single run goes first (in this process, saving a start-up) and prepares the data in the
    # cache; the DDP run reuses it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINILM_CACHE", str(tmp / "cache"))
        train_gpt.main(["--data", str(text), "--out_dir", str(single), "--batch_size", "8", *FLAGS])
    torchrun(ddp, text, tmp / "cache", batch_size=4)
    return single, ddp


def test_two_process_ddp_ends_with_the_single_process_weights(two_runs):
    single, ddp = (load_file(out / "ckpt" / "model.safetensors") for out in two_runs)
    assert single.keys() == ddp.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=0, atol=1e-5)


def test_two_process_ddp_training_moved_the_weights_far_beyond_the_tolerance(two_runs):
    """Guards the test above: most weights moved by far more than its tolerance."""
    state = load_file(two_runs[1] / "ckpt" / "model.safetensors")
    config = json.loads((two_runs[1] / "ckpt" / "config.json").read_text())
    torch.manual_seed(config["train"]["seed"])  # train_gpt.py's seed_everything before building the model
    start = GPT(GPTConfig.from_dict(config["model"])).state_dict()
    moved = torch.cat([(state[n] - start[n]).abs().flatten() for n in state])
    assert (moved > 1e-4).float().mean() > 0.5


def test_two_process_ddp_logs_the_loss_of_the_whole_batch(two_runs):
    single, ddp = ([row for row in rows(out) if "loss" in row] for out in two_runs)
    assert [row["step"] for row in ddp] == [row["step"] for row in single] == [4, 8]
    for a, b in zip(ddp, single):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
