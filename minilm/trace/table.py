"""The shape trace as a table a learner reads top to bottom (the order the code ran), or as JSON."""

import json

from .recorder import Step

COLUMNS = ("step", "shape", "dims", "dtype", "mean", "std", "max|x|", "where")
NUMERIC = {"mean", "std", "max|x|"}  # right-aligned
LEGEND_ORDER = ("B", "T", "T_k", "N", "C", "C_kv", "n_head", "n_kv_head", "head_dim", "mlp_width", "vocab_size")


def dim_sizes(steps: list[Step]) -> dict[str, int]:
    """What each letter of the dims stands for in this trace, read off the recorded shapes: {"T": 42, ...}."""
    sizes = {}
    for step in steps:
        for letter, size in zip(step.dims.split(", ") if step.dims else [], step.shape):
            if not letter.isdigit():
                sizes.setdefault(letter, size)
    return {letter: sizes[letter] for letter in LEGEND_ORDER if letter in sizes}


def format_report(title: str, text_line: str, notes: list[str], steps: list[Step], n_full: int) -> str:
    """The header (model, input, dims, notes) and the table; blocks from n_full on show only their output."""
    sizes = dim_sizes(steps)
    legend = "  ".join(f"{letter}={size}" for letter, size in sizes.items())
    if sizes.get("T_k", 0) > sizes.get("T", 0):  # keys the tokens did not bring: a prefix-tuning prefix
        legend += f"   (T_k: T + {sizes['T_k'] - sizes['T']} keys from the KV cache, a prefix)"
    lines = [title, f"input  {text_line}", f"dims   {legend}"]
    lines += [("notes  - " if i == 0 else "       - ") + note for i, note in enumerate(notes)]
    return "\n".join(lines + [""] + table_lines(steps, n_full)) + "\n"


def table_lines(steps: list[Step], n_full: int) -> list[str]:
    """One row per step; a block's steps indented under "block i"; blocks from n_full on: their output only."""
    n_layer = 1 + max((s.layer for s in steps if s.layer is not None), default=-1)
    steps_per_block = sum(1 for s in steps if s.layer == 0)
    rows = [COLUMNS]  # each a list of cells, or a str: a line of its own between the rows
    previous_layer = None
    for step in steps:
        if step.layer is None:
            rows.append(cells(step))
        elif step.layer < n_full:
            if step.layer != previous_layer:
                rows.append(f"block {step.layer}")
            rows.append(cells(step, indent="  "))
        elif step.name == "block output":
            if step.layer == n_full:
                rows.append(skipped_blocks_line(n_full, n_layer, steps_per_block))
            rows.append(cells(step, name=f"  block {step.layer} output"))
        previous_layer = step.layer
    widths = [max(len(row[i]) for row in rows if not isinstance(row, str)) for i in range(len(COLUMNS))]
    return [row if isinstance(row, str) else align(row, widths) for row in rows]


def skipped_blocks_line(n_full: int, n_layer: int, steps_per_block: int) -> str:
    blocks = f"block {n_full}" if n_layer - n_full == 1 else f"blocks {n_full}-{n_layer - 1}"
    if n_full == 0:
        return f"... {blocks}: {steps_per_block} steps each (--layers 1 shows them); here only the output of each:"
    return (f"... {blocks}: the same {steps_per_block} steps, with the same shapes, as block {n_full - 1}; "
            "here only the output of each:")


def cells(step: Step, indent: str = "", name: str | None = None) -> list[str]:
    return [name or indent + step.name, str(step.shape), step.dims or "scalar", step.dtype,
            number(step.mean), number(step.std), number(step.max_abs), step.where]


def align(row: list[str], widths: list[int]) -> str:
    padded = [cell.rjust(width) if column in NUMERIC else cell.ljust(width)
              for cell, width, column in zip(row, widths, COLUMNS)]
    return "  ".join(padded).rstrip()


def number(x: float) -> str:
    """Four decimals while that reads well, else scientific: 0.0312, -1.2345, 3.40e+38."""
    return f"{x:.4f}" if x == 0 or 1e-3 <= abs(x) < 1e5 else f"{x:.2e}"


def format_json(title: str, text: str, pieces: list[str], notes: list[str], steps: list[Step]) -> str:
    """Every step of every block (--layers shortens only the table), on one line."""
    record = {"model": title, "text": text, "tokens": pieces, "dims": dim_sizes(steps), "notes": notes,
              "steps": [step.as_dict() for step in steps]}
    return json.dumps(record, ensure_ascii=False) + "\n"
