"""The reading path README.md prints is true: the debugger recipe stops at the softmax, and the
launch.json entry names the same line."""

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def recipe_breakpoint() -> tuple[str, int]:
    match = re.search(r'python -m pdb -c "break (\S+):(\d+)"', README)
    return match.group(1), int(match.group(2))


def test_the_readme_breakpoint_is_the_softmax_line():
    path, line = recipe_breakpoint()
    assert "F.softmax(attn_scores" in (REPO / path).read_text().splitlines()[line - 1]


def test_the_launch_json_entry_breaks_on_the_same_line():
    path, line = recipe_breakpoint()
    entry = json.loads((REPO / ".vscode" / "launch.json").read_text())["configurations"][0]
    assert f"break {path}:{line}" in entry["args"]


def test_the_pdb_recipe_stops_in_a_training_step_with_the_scores_in_scope(tmp_path):
    path, line = recipe_breakpoint()
    command = [sys.executable, "-m", "pdb", "-c", f"break {path}:{line}", "-c", "continue", "train_gpt.py",
               "--config", "small", "--max_iters", "1", "--out_dir", str(tmp_path / "out"), "--progress", "false"]
    session = subprocess.run(command, cwd=REPO, input="p tuple(attn_scores.shape)\nwhere\nquit\n",
                             capture_output=True, text=True, timeout=300)
    assert "(16, 4, 128, 128)" in session.stdout  # (B, n_head, T, T_k) of the small preset
    assert "train_step" in session.stdout and "lm_task.py" in session.stdout  # the chain README prints
