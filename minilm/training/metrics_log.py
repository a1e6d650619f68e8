"""The run's metrics: one JSON object per line in metrics.jsonl, and a plot of them as a PNG."""

import json
from pathlib import Path


class MetricsLog:
    def __init__(self, path):
        self.path = Path(path)

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, step: int) -> None:
        """On resume: forget rows logged after the checkpoint's step (they will be logged again)."""
        kept = [row for row in self.rows() if row["step"] <= step]
        self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))

    def plot(self, png_path) -> None:
        """Losses in one panel, accuracies (and other metrics in [0, 1]) in another, against the step."""
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt

        series = {}  # metric name -> ([steps], [values])
        for row in self.rows():
            for name, value in row.items():
                if name in ("step", "lr", "ms_per_step", "tokens_per_s", "skipped_steps") or not isinstance(value, (int, float)):
                    continue
                steps, values = series.setdefault(name, ([], []))
                steps.append(row["step"])
                values.append(value)
        losses = {n: s for n, s in series.items() if "loss" in n}
        others = {n: s for n, s in series.items() if "loss" not in n and "ppl" not in n}
        panels = [p for p in (losses, others) if p]
        if not panels:
            return
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
        for ax, panel, label in zip(axes[0], panels, ("loss", "metric")):
            for name, (steps, values) in panel.items():
                ax.plot(steps, values, label=name, marker="." if len(steps) < 50 else None)
            ax.set_xlabel("step")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(png_path, dpi=100)
        plt.close(fig)
