"""Over-fitting remedies with few labels: sentiment from 500 training sentences, over 3 seeds.

    python -m bench.bench_overfitting                                   # the figures of docs/applications.md
    python -m bench.bench_overfitting --seeds 1 --members 2 --max_iters 20    # a quick look

For each seed, 500 sentences drawn from the training part of sentiment-pang-lee (the 400 held-out
sentences of --recipe sentiment-minilm are the validation set of every run), then LoRA on MiniLM:

    baseline    finetune.py on the 500
    fgm EPS     + --adversarial fgm --adv_epsilon EPS, for each of --epsilons
    augment     + --augment_copies 2 (EDA; synonyms from MiniLM's word embeddings)
    ensemble    finetune.py evaluate over 5 baseline runs of different training seeds (the first is
                the baseline itself); "members" is their mean accuracy

Every run evaluates once, at its last step, so no run picks its checkpoint on the validation set.
Each run is a `python finetune.py` process (a bench never imports a script). Results: mean ± sd over
the seeds, and every number in OUT/results.json.
"""

import argparse
import csv
import json
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from data.assets import fetch
from data.finetune_data import held_out_split, read_classification_file

REPO = Path(__file__).resolve().parents[1]


def write_rows(path: Path, examples) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([e.text, e.label] for e in examples)
    return path


def finetune(args: list[str]) -> tuple[str, float]:
    """Run `python finetune.py ARGS`; (its stdout, seconds)."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "finetune.py", *args], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"finetune.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout, time.perf_counter() - start


def val_acc_of(line: str) -> float:
    return float(re.search(r"val_acc ([0-9.]+)", line).group(1))


def train_run(out: Path, name: str, train_csv: Path, val_csv: Path, seed: int, cfg, extra=()) -> dict:
    stdout, seconds = finetune([
        "--task", "classify", "--base", "minilm-l6", "--data", str(train_csv), "--val_data", str(val_csv),
        "--pooling", "mean", "--max_length", "64", "--method", "lora", "--lora_targets", "q_proj,k_proj,v_proj,out_proj",
        "--max_iters", str(cfg.max_iters), "--batch_size", "16", "--warmup_iters", str(cfg.max_iters // 10),
        "--eval_interval", str(cfg.max_iters), "--eval_iters", "1", "--log_interval", str(cfg.max_iters),
        "--weight_decay", "0.01", "--seed", str(seed), "--out_dir", str(out / name), "--overwrite",
        "--progress", "false", *extra])
    after = next(line for line in stdout.splitlines() if line.startswith("after:"))
    return {"val_acc": val_acc_of(after), "seconds": seconds}


def one_seed(seed: int, train_pool, val_csv: Path, out: Path, cfg) -> dict:
    train_csv = write_rows(out / f"train-{seed}.csv", random.Random(seed).sample(train_pool, cfg.n_train))
    runs = {"baseline": train_run(out, f"s{seed}-baseline", train_csv, val_csv, seed, cfg)}
    for epsilon in cfg.epsilons:
        runs[f"fgm {epsilon:g}"] = train_run(out, f"s{seed}-fgm{epsilon:g}", train_csv, val_csv, seed, cfg,
                                             ["--adversarial", "fgm", "--adv_epsilon", str(epsilon)])
    runs["augment"] = train_run(out, f"s{seed}-augment", train_csv, val_csv, seed, cfg,
                                ["--augment_copies", "2", "--augment_p", "0.1"])
    members, member_seconds = [out / f"s{seed}-baseline"], [runs["baseline"]["seconds"]]
    for m in range(1, cfg.members):
        member_seconds.append(train_run(out, f"s{seed}-member{m}", train_csv, val_csv, seed * 100 + m, cfg)["seconds"])
        members.append(out / f"s{seed}-member{m}")
    stdout, seconds = finetune(["evaluate", *[a for member in members for a in ("--ckpt", str(member))]])
    lines = [line for line in stdout.splitlines() if "val_acc" in line]
    runs["members"] = {"val_acc": statistics.mean(val_acc_of(line) for line in lines[:-1]),
                       "seconds": statistics.mean(member_seconds)}
    runs["ensemble"] = {"val_acc": val_acc_of(lines[-1]), "seconds": sum(member_seconds) + seconds}  # all of it
    print(f"seed {seed}: " + " | ".join(f"{name} {r['val_acc']:.4f} ({r['seconds']:.0f} s)" for name, r in runs.items()),
          flush=True)
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--n_train", type=int, default=500, help="training sentences per seed")
    parser.add_argument("--max_iters", type=int, default=80, help="steps of 16 sentences per run")
    parser.add_argument("--members", type=int, default=5, help="runs in the ensemble")
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.1, 0.25], help="FGM's ε, a run each")
    parser.add_argument("--out", default="/tmp/minilm-overfitting", help="scratch folder for the runs")
    cfg = parser.parse_args(argv)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    examples = read_classification_file(fetch("sentiment-pang-lee"), "1", "0")
    train_pool, val = held_out_split(examples, 0.1)  # the split of --recipe sentiment-minilm
    val_csv = write_rows(out / "val.csv", val)
    results = {seed: one_seed(seed, train_pool, val_csv, out, cfg) for seed in cfg.seeds}
    print(f"\n{cfg.n_train} training sentences, {len(val)} held out, LoRA, {cfg.max_iters} steps x 16; "
          f"seeds {', '.join(map(str, cfg.seeds))}")
    for name in results[cfg.seeds[0]]:
        accs = [100 * results[seed][name]["val_acc"] for seed in cfg.seeds]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        seconds = statistics.mean(results[seed][name]["seconds"] for seed in cfg.seeds)
        print(f"{name:10s} {statistics.mean(accs):6.2f} ± {sd:4.2f}   ({', '.join(f'{a:.2f}' for a in accs)}; "
              f"{seconds:.0f} s per run)")
    (out / "results.json").write_text(json.dumps({"config": vars(cfg), "results": results}, indent=1))


if __name__ == "__main__":
    main()
