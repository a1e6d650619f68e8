"""The debugger recipe (README, "Stop at the softmax"; .vscode/launch.json) names a line of attention.py by
number: it must be the softmax line, whatever edits move it."""

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ATTENTION = REPO / "minilm" / "model" / "attention.py"


def named_lines(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"minilm/model/attention\.py:(\d+)", text)]


def softmax_line() -> str:
    return "attn_probs = F.softmax(attn_scores"


def test_the_readme_breakpoint_is_on_the_softmax():
    lines = ATTENTION.read_text().splitlines()
    numbers = named_lines((REPO / "README.md").read_text())
    assert numbers, "README.md no longer shows the breakpoint"
    for n in numbers:
        assert softmax_line() in lines[n - 1], f"README's attention.py:{n} is {lines[n - 1].strip()!r}"


def test_the_vscode_breakpoint_is_on_the_softmax():
    lines = ATTENTION.read_text().splitlines()
    launch = json.loads((REPO / ".vscode" / "launch.json").read_text())
    numbers = named_lines(json.dumps(launch))
    assert numbers, "launch.json no longer sets the breakpoint"
    for n in numbers:
        assert softmax_line() in lines[n - 1], f"launch.json's attention.py:{n} is {lines[n - 1].strip()!r}"
