"""Code that README.md and docs/ quote is the code: a ```python block whose first line names a file and a
function or class of it,

    ```python
    # minilm/model/llama.py, RMSNorm.forward
    def forward(self, x):  # (B, T, C) -> (B, T, C)
        ...
    ```

must be, line for line, a run of consecutive lines of that definition (both dedented: a quote may be a few
lines from inside a function body, written flush left). A quote
is found by the name, never by a line number, so code may move; when the quoted lines change, this fails
and names the page and the quote to update.
"""

import ast
import re
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
SOURCE_LINE = re.compile(r"# ((?:minilm|tokenizer|common|data|exercises)/[\w/]+\.py), ([\w.]+)$")


def quotes_on(page: Path) -> list[tuple[str, str, list[str]]]:
    """(file, qualified name, the quoted lines) for each python block that says where it comes from."""
    found = []
    for block in PYTHON_BLOCK.findall(page.read_text(encoding="utf-8")):
        first, *lines = block.rstrip("\n").split("\n")
        match = SOURCE_LINE.match(first.strip())
        if match:
            found.append((match[1], match[2], lines))
    return found


def definition_lines(path: Path, qualified_name: str) -> list[str] | None:
    """The source lines of the function or class `A.b` in path, dedented; None when there is none."""
    nodes, node = ast.parse(path.read_text(encoding="utf-8")).body, None
    for part in qualified_name.split("."):
        node = next((n for n in nodes if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
        if node is None:
            return None
        nodes = node.body
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    lines = path.read_text(encoding="utf-8").splitlines()[first - 1:node.end_lineno]
    return textwrap.dedent("\n".join(lines)).split("\n")


def is_run_of(quoted: list[str], source: list[str]) -> bool:
    """Whether the quoted lines, dedented, equal some run of len(quoted) source lines, dedented."""
    quoted_text, n = textwrap.dedent("\n".join(quoted)), len(quoted)
    return any(textwrap.dedent("\n".join(source[i:i + n])) == quoted_text for i in range(len(source) - n + 1))


ALL_QUOTES = [(page, *quote) for page in PAGES for quote in quotes_on(page)]


@pytest.mark.parametrize("page, file, name, lines", ALL_QUOTES,
                         ids=[f"{p.relative_to(REPO)}: {n}" for p, _, n, _ in ALL_QUOTES])
def test_every_quote_is_a_run_of_lines_of_the_definition_it_names(page, file, name, lines):
    source = definition_lines(REPO / file, name) if (REPO / file).is_file() else None
    assert source is not None, f"{page.name} quotes {name} of {file}, which has no such function or class"
    assert lines and is_run_of(lines, source), (
        f"{page.name}: the quote of {name} ({file}) is no longer in the code; copy the lines again:\n"
        + "\n".join(source))


def test_the_quote_check_sees_a_changed_line_and_a_missing_name(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "page.md"
    page.write_text("```python\n# minilm/model/rope.py, rotate_half\nx1, x2 = x.chunk(2, dim=-1)\nreturn x\n```\n"
                    "```python\n# minilm/model/rope.py, no_such_function\npass\n```\n```python\nprint(1)\n```\n")
    (quote_file, name, lines), (_, missing, _) = quotes_on(page)
    source = definition_lines(REPO / quote_file, name)
    assert is_run_of(lines[:1], source) and not is_run_of(lines, source)  # the second line is not the code's
    assert definition_lines(REPO / quote_file, missing) is None
