"""Resume is exact whenever the signal comes: seeded trials of a tiny `python train_gpt.py` run, each stopped
at a random moment by SIGTERM, by Ctrl-C (SIGINT), or by Ctrl-C pressed twice, then continued with --resume.
Every trial must end with the uninterrupted run's final checkpoint, bit for bit (weights and AdamW's step
counts and moments), and the same metrics.jsonl rows (timings aside).

    python -m bench.bench_interrupts                   # 24 trials (8 of each kind)
    python -m bench.bench_interrupts --trials 6        # a quick look

A trial waits for the log line of a random step k (after the first checkpoint, so that a second Ctrl-C,
which leaves at once without saving, has one to fall back on), then sleeps a random fraction of a step
and signals: the signal lands in a forward or backward pass, in optimizer.step(), in the logging, an
evaluation or a checkpoint save. Ctrl-C twice: the first press at once, the second after that sleep, so
that it lands inside the step the first one lets finish (or in its save). Dropout is on, so the torch RNG
state must come back too. Each run is a process (a bench never imports a script). Results per trial and
the counts are printed and written to OUT/results.json.

Measured (2 busy shared cores, 34 ms a step): 24 trials, 24 bitwise equal, 7 of them left at once on the
second Ctrl-C. The same bench on the code before the stop at a step boundary: 10 of 12 equal.
"""

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from minilm.training.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]

MAX_ITERS, EVAL_INTERVAL = 40, 10
FLAGS = ["--n_layer", "2", "--n_head", "2", "--n_embd", "64", "--block_size", "32", "--batch_size", "8",
         "--dropout", "0.1", "--max_iters", str(MAX_ITERS), "--lr", "1e-3", "--warmup_iters", "5",
         "--eval_interval", str(EVAL_INTERVAL), "--eval_iters", "2", "--log_interval", "1", "--device", "cpu",
         "--progress", "false", "--num_samples", "0"]
KINDS = {"SIGTERM": [signal.SIGTERM], "Ctrl-C": [signal.SIGINT], "Ctrl-C twice": [signal.SIGINT, signal.SIGINT]}


def write_text(path: Path) -> Path:
    """400 lines of ten words drawn from a dozen."""
    words = "to be or not that is the question whether tis nobler in".split()
    rng = random.Random(0)
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(400)))
    return path


class Runs:
    def __init__(self, out: Path):
        self.out, self.text = out, write_text(out / "text.txt")
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MINILM_CACHE": str(out / "cache")}

    def command(self, out_dir: Path, *extra: str) -> list[str]:
        return [sys.executable, "train_gpt.py", "--data", str(self.text), "--out_dir", str(out_dir), *FLAGS, *extra]

    def run(self, out_dir: Path, *extra: str) -> subprocess.CompletedProcess:
        result = subprocess.run(self.command(out_dir, *extra), cwd=REPO, env=self.env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"train_gpt.py {' '.join(extra)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result

    def interrupted(self, out_dir: Path, at_step: int, delay: float, signals: list[int]) -> tuple[int, str]:
        """Start a run, signal it `delay` seconds after it logs step at_step: (exit status, its output). Two
        signals: the first at once, the second after `delay` (a signal sent before the process has taken
        the first would be merged with it by the kernel)."""
        process = subprocess.Popen(self.command(out_dir, "--overwrite"), cwd=REPO, env=self.env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("step") and int(line.split()[1]) == at_step:
                break
        for i, signum in enumerate(signals):
            if i or len(signals) == 1:
                time.sleep(delay)
            process.send_signal(signum)
        rest, _ = process.communicate(timeout=300)
        return process.returncode, "".join(lines) + rest


def final_state(out_dir: Path) -> tuple[dict, dict, list]:
    weights, _, state = load_checkpoint(out_dir / "ckpt")
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [{k: v for k, v in row.items() if k not in ("ms_per_step", "tokens_per_s")} for row in rows]
    return weights, state["optimizer"]["state"], rows


def same(a: tuple, b: tuple) -> bool:
    (weights_a, moments_a, rows_a), (weights_b, moments_b, rows_b) = a, b
    return (weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[n], weights_b[n]) for n in weights_a)
            and moments_a.keys() == moments_b.keys()
            and all(torch.equal(moments_a[i][k], moments_b[i][k]) for i in moments_a for k in moments_a[i])
            and rows_a == rows_b)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/bench_interrupts")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = Runs(out)
    runs.run(out / "straight", "--overwrite")
    straight = final_state(out / "straight")
    step_seconds = statistics.mean(r["ms_per_step"] for r in map(json.loads, (out / "straight" / "metrics.jsonl")
                                   .read_text().splitlines()) if "ms_per_step" in r) / 1000
    rng = random.Random(args.seed)
    results = []
    for trial in range(args.trials):
        kind = list(KINDS)[trial % len(KINDS)]
        at_step, delay = rng.randint(EVAL_INTERVAL + 1, MAX_ITERS - 5), rng.uniform(0, 1.5) * step_seconds
        out_dir = out / f"trial{trial}"
        status, log = runs.interrupted(out_dir, at_step, delay, KINDS[kind])
        (out / f"trial{trial}.log").write_text(log)
        saved = load_checkpoint(out_dir / "ckpt")[1]["step"]
        runs.run(out_dir, "--resume")
        equal = same(final_state(out_dir), straight)
        results.append({"trial": trial, "kind": kind, "signalled_after_step": at_step, "delay_s": round(delay, 4),
                        "exit_status": status, "resumed_from_step": saved, "bitwise_equal": equal,
                        "left_at_once": "left at once" in log})
        print(f"trial {trial:2d}  {kind:12s}  after step {at_step:2d} +{1000 * delay:5.1f} ms  exit {status}  "
              f"resumed from {saved:2d}{'  (left at once)' if results[-1]['left_at_once'] else ''}  "
              f"{'equal' if equal else 'DIFFERENT'}", flush=True)
    summary = {"trials": len(results), "bitwise_equal": sum(r["bitwise_equal"] for r in results),
               "by_kind": {k: sum(r["kind"] == k for r in results) for k in KINDS},
               "left_at_once": sum(r["left_at_once"] for r in results),
               "ms_per_step": round(1000 * step_seconds, 1)}
    print(json.dumps(summary))
    (out / "results.json").write_text(json.dumps({"summary": summary, "trials": results}, indent=2))
    return 0 if summary["bitwise_equal"] == summary["trials"] else 1


if __name__ == "__main__":
    sys.exit(main())
