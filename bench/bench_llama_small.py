"""GPT-2's parts against Llama's at equal compute: `train_gpt.py --config small` and `--config small-llama`
(the same corpus, 2,000 steps of 16 x 128 characters, schedule and parameter count within 3%), several seeds.

Each run is the unchanged command in a subprocess, one thread each, the two architectures interleaved so
that a busy machine slows both alike. Prints and writes (--json) each run's best validation loss, its step
and wall time, and the mean ± spread per architecture; --plot draws the validation curves.

    python -m bench.bench_llama_small --seeds 1 2 3 --json docs/experiments/llama_small.json \
        --plot docs/img/llama_small.png

Seeds may run as separate processes (two cores, two seeds at once), each with its own --json; then
--combine reads them, and prints, writes and plots the whole:

    python -m bench.bench_llama_small --seeds 2 --json out/seed2.json &
    python -m bench.bench_llama_small --seeds 3 --json out/seed3.json
    python -m bench.bench_llama_small --combine out/seed1.json out/seed2.json out/seed3.json \
        --json docs/experiments/llama_small.json --plot docs/img/llama_small.png
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("small", "small-llama")


def run(config: str, seed: int, out_dir: Path, extra: list[str]) -> dict:
    """One training run; its validation curve and wall time."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "train_gpt.py", "--config", config, "--seed", str(seed), "--out_dir", str(out_dir),
               "--num_samples", "0", "--progress", "false", *extra]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    evals = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if '"val_loss"' in line]
    best = min(evals, key=lambda e: e["val_loss"])
    return {"config": config, "seed": seed, "best_val_loss": best["val_loss"], "best_step": best["step"],
            "final_val_loss": evals[-1]["val_loss"], "seconds": seconds,
            "curve": [(e["step"], e["val_loss"]) for e in evals]}


def summary(runs: list[dict]) -> dict:
    table = {}
    for config in CONFIGS:
        mine = [r for r in runs if r["config"] == config]
        if mine:
            losses = [r["best_val_loss"] for r in mine]
            table[config] = {"runs": len(mine), "best_val_loss_mean": statistics.mean(losses),
                             "best_val_loss_stdev": statistics.stdev(losses) if len(losses) > 1 else 0.0,
                             "seconds_mean": statistics.mean(r["seconds"] for r in mine)}
    return table


def plot(runs: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in runs:
        steps, losses = zip(*r["curve"])
        ax.plot(steps, losses, color="tab:blue" if r["config"] == "small" else "tab:orange", alpha=0.8,
                label=f"{r['config']} seed {r['seed']}")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats per character)")
    ax.set_title("GPT-2's parts (small) vs Llama's (small-llama), same budget")
    ax.set_ylim(top=min(3.0, ax.get_ylim()[1]))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--json", help="write the runs and the summary here")
    parser.add_argument("--plot", help="draw the validation curves here (PNG)")
    parser.add_argument("--combine", nargs="+", metavar="JSON", help="train nothing: the runs of these --json files")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train_gpt.py flags, for both")
    args = parser.parse_args(argv)
    runs = [run for path in args.combine or [] for run in json.loads(Path(path).read_text())["runs"]]
    if args.combine and args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary(runs)}, indent=1))
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [] if args.combine else args.seeds:
            for config in CONFIGS:
                runs.append(run(config, seed, Path(tmp) / f"{config}-{seed}", args.extra))
                r = runs[-1]
                print(f"{config:12s} seed {seed}: best val {r['best_val_loss']:.4f} at step {r['best_step']}, "
                      f"{r['seconds'] / 60:.1f} min", flush=True)
                if args.json:  # after every run, so a long benchmark that is stopped keeps what it measured
                    Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary(runs)}, indent=1))
    for config, row in summary(runs).items():
        print(f"{config:12s} {row['best_val_loss_mean']:.4f} ± {row['best_val_loss_stdev']:.4f} "
              f"({row['runs']} seeds), {row['seconds_mean'] / 60:.1f} min a run")
    if args.plot:
        plot(runs, args.plot)


if __name__ == "__main__":
    main()
