"""Shared by the DDP and FSDP tests: a tiny GPT run, in this process or under torchrun (gloo, CPU); several
runs of a script in one torchrun launch (torchrun_mains)."""

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


def torchrun(cache: Path, *args: str, program: Path = REPO / "train_gpt.py") -> subprocess.CompletedProcess:
    """train_gpt.py (or another program) in two processes; args are its flags. Fails the test if it fails."""
    env = {**os.environ, "MINILM_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(program), *args]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def torchrun_mains(cache: Path, script: str, runs: list[list[str]]) -> subprocess.CompletedProcess:
    """script's main() (script e.g. "train_bert.py") once for each list of flags in runs, one run after the
    other in the same two processes, so that each imports torch and the script once: on a busy CPU that is
    most of a launch. This file's __main__ below is what each process runs."""
    return torchrun(cache, script, json.dumps(runs), program=Path(__file__))


def _main_each(script: str, runs: list[list[str]]) -> None:
    """One process of torchrun_mains. The process group is joined once, by the first run, and kept to the
    end: a run leaves it as it ends (Trainer.run), and a group made again afterwards reuses the store keys of
    the last one, so the process that gets there first can read the other's stale address and hang."""
    sys.path.insert(0, str(REPO))  # run as a file, this process has tests/ on its path, not the scripts
    import importlib
    from minilm.training import trainer
    main = importlib.import_module(Path(script).stem).main
    leave, trainer.shutdown_distributed = trainer.shutdown_distributed, lambda together=True: None
    for argv in runs:
        main(argv)
    leave()


def rows(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


if __name__ == "__main__":  # under torchrun_mains
    _main_each(sys.argv[1], json.loads(sys.argv[2]))
