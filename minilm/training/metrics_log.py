"""The run's metrics: one JSON object per line in metrics.jsonl, and a plot of them as a PNG.

Each row is appended in one write as the run goes. A crash or a full disk can cut the last append short,
so a torn last line is expected and left out (`rows` notes it in `torn_line`); a line anywhere else that
is not a row was put there by something other than a run, so reading stops with an error that names it
rather than guess, or drop it when `--resume` rewrites the file.
"""

import itertools
import json
from pathlib import Path

from common.atomic import write_file_atomic, write_text_atomic
from common.errors import DataError

NOT_PLOTTED = ("step", "ms_per_step", "tokens_per_s", "skipped_steps")
# Okabe and Ito's colours: told apart with every common colour-vision deficiency.
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
LEGEND_BELOW = dict(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)


class MetricsLog:
    def __init__(self, path):
        self.path = Path(path)
        self.torn_line = None  # the text of a torn last line that rows() left out

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")  # one write: an interruption can only tear the last line

    def rows(self) -> list[dict]:
        """Every row, in order. A torn last line is left out (and kept in torn_line); any other line
        that is not a JSON object with an integer "step" raises DataError naming the line."""
        self.torn_line = None
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        rows = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            row = _parse_row(line)
            if row is not None:
                rows.append(row)
            elif number == len(lines):
                self.torn_line = line
            else:
                raise DataError(f"{self.path}, line {number}, is not a row of metrics ({line[:60]!r}): something "
                                "other than a run changed the file. Repair or delete that line (the checkpoint does "
                                "not need it), then run again")
        return rows

    def truncate_after(self, step: int) -> None:
        """On resume: forget rows logged after the checkpoint's step (they will be logged again), and a
        torn last line. The file is replaced atomically: a crash leaves the old one or the new one."""
        kept = [row for row in self.rows() if row["step"] <= step]
        if self.torn_line is not None:
            print(f"note: the last line of {self.path} was cut short (an append that did not finish); "
                  f"it is dropped: {self.torn_line[:60]!r}")
        write_text_atomic(self.path, "".join(json.dumps(row) + "\n" for row in kept))

    def plot(self, png_path, title: str | None = None) -> None:
        """The run at a glance: the losses with the learning rate on a second axis, and (when the task
        reports any) the other metrics, such as accuracies, in a second panel.

        The per-step training loss is one batch with dropout on, so it is noisy and sits above the
        evaluation's train_loss, which averages eval_iters batches in eval mode (no dropout): the two
        are drawn apart, a thin line and markers, so the gap is not mistaken for overfitting."""
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt

        steps, evals = self.series()
        if not steps and not evals:
            return
        others = {n: s for n, s in evals.items() if "loss" not in n and "ppl" not in n}
        fig, axes = plt.subplots(1, 2 if others else 1, figsize=(12 if others else 7, 5.2), squeeze=False)
        self.plot_losses(axes[0][0], steps, evals)
        if others:
            self._plot_metrics(axes[0][1], others)
        fig.suptitle(title or f"{self.path.parent.name}: training", fontsize=12)
        fig.tight_layout()
        try:  # atomic: a full disk leaves the previous picture, not half a PNG
            write_file_atomic(png_path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
        finally:
            plt.close(fig)

    def series(self) -> tuple[dict, dict]:
        """(per-step series: loss and lr, evaluation series: every metric), each name -> ([steps], [values])."""
        steps, evals = {}, {}
        for row in self.rows():
            target = evals if "loss" not in row and "lr" not in row else steps
            for name, value in row.items():
                if name in NOT_PLOTTED or not isinstance(value, (int, float)):
                    continue
                xs, ys = target.setdefault(name, ([], []))
                xs.append(row["step"])
                ys.append(value)
        return steps, evals

    @staticmethod
    def plot_losses(ax, steps: dict, evals: dict) -> None:
        colours = itertools.cycle(OKABE_ITO)
        if "loss" in steps:
            ax.plot(*steps["loss"], color="#999999", linewidth=1,
                    label="loss of each step's batch (train mode: dropout on, if any)")
        for name, (xs, ys) in evals.items():
            if "loss" in name:
                style = dict(marker="o", linestyle="-") if name.startswith("val") else dict(marker="s", linestyle=":")
                ax.plot(xs, ys, markersize=4, color=next(colours), label=f"{name} (evaluation)", **style)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats per token)")
        ax.grid(alpha=0.3)
        if "lr" in steps:
            lr_axis = ax.twinx()
            lr_axis.plot(*steps["lr"], color="black", linestyle="--", linewidth=1, label="learning rate")
            lr_axis.set_ylabel("learning rate")
            lr_axis.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
            lines, labels = ax.get_legend_handles_labels()
            more, more_labels = lr_axis.get_legend_handles_labels()
            ax.legend(lines + more, labels + more_labels, **LEGEND_BELOW)
        else:
            ax.legend(**LEGEND_BELOW)
        ax.set_title("losses and learning rate", fontsize=10)

    @staticmethod
    def _plot_metrics(ax, others: dict) -> None:
        for (name, (xs, ys)), colour in zip(others.items(), itertools.cycle(OKABE_ITO)):
            ax.plot(xs, ys, marker="o", markersize=4, color=colour, label=name)
        ax.set_xlabel("step")
        ax.set_ylabel("metric")
        ax.grid(alpha=0.3)
        ax.legend(**LEGEND_BELOW)
        ax.set_title("evaluation metrics", fontsize=10)


def _parse_row(line: str) -> dict | None:
    """The row a line holds, or None if it is not one (not JSON, or no integer "step")."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(row, dict) or type(row.get("step")) is not int:
        return None
    return row
