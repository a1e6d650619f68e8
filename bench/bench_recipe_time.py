"""How long a finetune.py recipe takes, by ratio to one whose time on 2 quiet cores is known.

    python -m bench.bench_recipe_time ner-minilm --recipe_steps 250      # against sentiment-minilm (full)
    python -m bench.bench_recipe_time intent-minilm --recipe_steps 150

On shared cores a wall time says more about the neighbours than about the recipe. Both recipes run at
once (two `python finetune.py` processes, one thread each, the same neighbours), a few steps each,
and their median ms/step give the ratio; the estimate is

    time(recipe) ≈ ratio · (reference seconds on quiet cores / reference steps) · recipe steps

with the reference's figure from the README (sentiment-minilm, full: 2 min 52 s for 150 steps, its
evaluations included, which the estimate then assumes are alike).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = ("sentiment-minilm", 172.0, 150)  # recipe, seconds on 2 quiet cores (README), its steps


def start(recipe: str, steps: int, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "finetune.py", "--recipe", recipe, "--max_iters", str(steps), "--eval_interval", str(steps),
         "--eval_iters", "1", "--log_interval", "5", "--patience", "0", "--out_dir", str(out / recipe),
         "--overwrite", "--progress", "false"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})  # one core each


def ms_per_step(log: str) -> float:
    """The median of the logged ms/step, the first interval (warm-up) left out."""
    values = [float(v) for v in re.findall(r"([0-9.]+) ms/step", log)]
    return statistics.median(values[1:] or values)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe")
    parser.add_argument("--recipe_steps", type=int, required=True, help="the recipe's own max_iters")
    parser.add_argument("--steps", type=int, default=30, help="steps of each recipe in the measurement")
    parser.add_argument("--out", default="/tmp/minilm-recipe-time")
    cfg = parser.parse_args(argv)
    reference, reference_seconds, reference_steps = REFERENCE
    runs = {name: start(name, cfg.steps, Path(cfg.out)) for name in (cfg.recipe, reference)}
    logs = {name: run.communicate()[0] for name, run in runs.items()}
    for name, run in runs.items():
        if run.returncode != 0:
            raise SystemExit(f"{name} failed:\n{logs[name][-2000:]}")
    ms = {name: ms_per_step(log) for name, log in logs.items()}
    ratio = ms[cfg.recipe] / ms[reference]
    estimate = ratio * reference_seconds / reference_steps * cfg.recipe_steps
    print(f"{cfg.recipe} {ms[cfg.recipe]:.0f} ms/step, {reference} {ms[reference]:.0f} ms/step (side by side, "
          f"one thread each): ratio {ratio:.2f}; {cfg.recipe_steps} steps ≈ {estimate / 60:.1f} min on 2 quiet cores")


if __name__ == "__main__":
    main()
