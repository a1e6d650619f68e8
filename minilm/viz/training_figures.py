"""Pictures of training: each preset's learning-rate schedule beside a real run's loss, and BERT's
15% / 80-10-10 masking on one real pair. Each function writes one PNG (`python -m minilm.viz figures`)."""

import matplotlib.pyplot as plt  # with no display, matplotlib draws to files (its Agg backend)
import torch
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from ..model.losses import IGNORE_INDEX, mask_tokens
from ..training.metrics_log import OKABE_ITO, MetricsLog
from ..training.trainer import TrainConfig, learning_rate


def plot_schedules(path, presets: dict[str, dict[str, dict]], metrics_path, run_name: str) -> None:
    """Left: learning_rate() over each preset's steps ({script: {preset: {"train": {...}}}}). Right: the
    loss of a real run (its metrics.jsonl) with the schedule it ran under."""
    fig, axes = plt.subplots(1, len(presets) + 1, figsize=(5.2 * (len(presets) + 1), 5.2))
    for ax, (script, named) in zip(axes, presets.items()):
        for (name, preset), colour in zip(named.items(), OKABE_ITO):
            cfg = TrainConfig(**preset["train"])
            steps = range(0, cfg.max_iters, max(1, cfg.max_iters // 400))
            ax.plot(list(steps), [learning_rate(s, cfg) for s in steps], color=colour, label=f"--config {name}")
        ax.set_title(f"{script}: warm-up, then cosine to min_lr", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(5))  # step counts up to 20,000: few ticks, or they collide
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    steps, evals = MetricsLog(metrics_path).series()
    MetricsLog.plot_losses(axes[-1], steps, evals)  # as every run's metrics.png draws them
    axes[-1].set_title(f"a real run: {run_name}", fontsize=10)
    fig.suptitle("The learning-rate schedule (minilm/training/trainer.py: learning_rate)", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


FATES = {  # what a position became, its colour (Okabe-Ito) and its legend
    "kept out": ("#e8e8e8", "not chosen (85%): no label"),
    "[MASK]": (OKABE_ITO[0], "chosen, became [MASK] (80% of chosen)"),
    "random": (OKABE_ITO[1], "chosen, became a random token (10%)"),
    "unchanged": (OKABE_ITO[2], "chosen, left unchanged (10%): still predicted"),
}


def masking_fates(input_ids, special, mask_id: int, vocab_size: int, seed: int):
    """mask_tokens on one pair, and what each position became: (masked ids, labels, fate per position)."""
    masked, labels = mask_tokens(input_ids, special, mask_id, vocab_size, 0.15, torch.Generator().manual_seed(seed))
    fates = []
    for original, new, label in zip(input_ids[0].tolist(), masked[0].tolist(), labels[0].tolist()):
        if label == IGNORE_INDEX:
            fates.append("kept out")
        elif new == mask_id:
            fates.append("[MASK]")
        else:
            fates.append("unchanged" if new == original else "random")
    return masked, labels, fates


def plot_masking(path, pieces: list[str], new_pieces: list[str], fates: list[str], per_row: int = 16) -> None:
    """Two lines per row of tokens: what the text was, what the model reads; coloured by fate."""
    rows = [range(i, min(i + per_row, len(pieces))) for i in range(0, len(pieces), per_row)]
    fig, ax = plt.subplots(figsize=(1.05 * per_row, 1.25 * len(rows) + 1.4))
    for r, positions in enumerate(rows):
        top = -2.6 * r
        for column, i in enumerate(positions):
            colour = FATES[fates[i]][0]
            for y, text, fill in ((top, pieces[i], "#ffffff"), (top - 1, new_pieces[i], colour)):
                ax.add_patch(Rectangle((column, y - 0.45), 0.95, 0.9, facecolor=fill, edgecolor=colour, linewidth=2))
                light = fill in ("#ffffff", "#e8e8e8")
                ax.text(column + 0.475, y, text, ha="center", va="center", fontsize=8,
                        color="black" if light else "white")
        ax.text(-0.2, top, "text", ha="right", va="center", fontsize=9)
        ax.text(-0.2, top - 1, "model input", ha="right", va="center", fontsize=9)
    ax.set_xlim(-2.2, per_row)
    ax.set_ylim(-2.6 * (len(rows) - 1) - 1.7, 0.8)
    ax.axis("off")
    ax.legend(handles=[Patch(facecolor=c, edgecolor=c, label=text) for c, text in FATES.values()], ncol=2,
              loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False)
    ax.set_title("BERT's masking on one pair (minilm/model/losses.py: mask_tokens, mlm_prob 0.15)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
