"""Every project file that README.md and docs/ name exists, so the map of the code cannot drift from it.

Checked: the target of every relative Markdown link, and every path in backquotes whose first part is a
folder of the project (minilm/..., docs/..., tests/...) or that names a top-level script. A `*` is a glob
that must match something; `<name>` parts and paths under out/ or the cache are not project files.
"""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
PROJECT_FOLDERS = ("minilm", "tokenizer", "data", "common", "tests", "bench", "docs", ".ci")
SCRIPTS = ("train_gpt.py", "train_bert.py", "finetune.py", "sample.py")
LINK = re.compile(r"\]\(([^)\s]+)\)")
BACKQUOTED = re.compile(r"`([^`\s]+)`")


def named_paths(page: Path) -> list[tuple[str, Path]]:
    """(as written, where it should be) for each project path the page names."""
    text = page.read_text(encoding="utf-8")
    found = []
    for target in LINK.findall(text):
        if not re.match(r"[a-z]+:|#", target):  # not a URL, not an anchor on the same page
            found.append((target, page.parent / target.split("#")[0]))
    for written in BACKQUOTED.findall(text):
        path = written.split(":")[0].rstrip(".,")  # minilm/model/gpt.py:42 -> the file
        first = path.split("/")[0]
        if "<" in path or "{" in path:
            continue
        if (first in PROJECT_FOLDERS and "/" in path) or path in SCRIPTS:
            found.append((written, REPO / path))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_project_path_a_page_names_exists(page):
    missing = [written for written, path in named_paths(page)
               if not (list(path.parent.glob(path.name)) if "*" in path.name else path.exists())]
    assert missing == [], f"{page.relative_to(REPO)} names files that do not exist: {missing}"


def test_the_checker_sees_a_missing_file(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("See `minilm/model/nope.py`, [the blocks](../minilm/model/blocks.py) and `out/run/best`.")
    named = [written for written, _ in named_paths(page)]
    assert named == ["../minilm/model/blocks.py", "minilm/model/nope.py"]
