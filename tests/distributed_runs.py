"""Shared by the DDP and FSDP tests: a tiny GPT run, in this process or under torchrun (gloo, CPU)."""

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLAGS = ["--n_layer", "1", "--n_head", "2", "--n_embd", "32", "--block_size", "16", "--max_iters", "8",
         "--lr", "1e-3", "--warmup_iters", "2", "--eval_interval", "4", "--eval_iters", "2",
         "--log_interval", "4", "--device", "cpu", "--progress", "false", "--num_samples", "0"]


def write_text(path: Path) -> Path:
    """300 lines of ten words drawn from a dozen: enough for a character model to learn something."""
    words = "to be or not that is the question whether tis nobler in".split()
    rng = random.Random(0)
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(300)))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(cache: Path, *args: str) -> subprocess.CompletedProcess:
    """train_gpt.py in two processes; args are its flags. Fails the test if it fails."""
    env = {**os.environ, "MINILM_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(REPO / "train_gpt.py"), *args]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def rows(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
