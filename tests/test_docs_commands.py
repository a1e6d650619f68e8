"""What README.md and docs/ tell a reader to run exists: every `python ...` command names a script or
module of the project (or an installed one) whose flags exist, and every code cell of a "formula | code"
table appears in the file the page names."""

import functools
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
PROJECT = {"minilm", "tokenizer", "data", "exercises"}
SUBCOMMANDS = {"finetune.py": {"predict", "evaluate"}, "minilm.viz": {"attention", "figures"}, "tokenizer": {"encode", "train"},
               "minilm.assistant": {"chat", "evaluate", "index"}, "minilm.compress": {"quantize", "prune"}}


def commands_on(page: Path) -> list[str]:
    """Every `python ...` command: lines of code blocks and backquoted spans, a trailing # comment cut."""
    text = page.read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, flags=re.S)
    lines = [line for block in blocks for line in block.splitlines()] + re.findall(r"`(python [^`]+)`", text)
    found = []
    for line in lines:
        line = re.sub(r"^\$ ", "", line.strip())
        line = re.split(r"\s+#\s", line)[0].strip()
        if line.startswith("python ") and "<<" not in line and "-c " not in line[:12]:
            found.append(line)
    return found


def target_of(command: str) -> tuple[str, str | None, list[str]]:
    """(script or module, subcommand or None, the flags given)."""
    words = shlex.split(command.replace("\\\n", " "), posix=True) if command.count('"') % 2 == 0 else command.split()
    words = words[1:]
    if words[:1] == ["-m"]:
        target, rest = words[1], words[2:]
    else:
        target, rest = words[0], words[1:]
    sub = rest[0] if rest and rest[0] in SUBCOMMANDS.get(target, ()) else None
    flags = [w.split("=")[0] for w in rest if w.startswith("--")]
    return target, sub, flags


@functools.cache
def flags_of(target: str, sub: str | None) -> frozenset[str]:
    """The flags `--help` lists for the command."""
    program = ["-m", target] if not target.endswith(".py") else [target]
    result = subprocess.run([sys.executable, *program, *([sub] if sub else []), "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{target} {sub or ''} --help failed: {result.stderr[-500:]}"
    return frozenset(re.findall(r"--[\w-]+", result.stdout))


def exists(target: str) -> bool:
    if target.endswith(".py"):
        return (REPO / target).is_file()
    return importlib.util.find_spec(target) is not None


ALL_COMMANDS = [(page, command) for page in PAGES for command in commands_on(page)]


@pytest.mark.slow
@pytest.mark.parametrize("page, command", ALL_COMMANDS,
                         ids=[f"{p.relative_to(REPO)}: {c[:60]}" for p, c in ALL_COMMANDS])
def test_every_command_a_page_gives_runs_something_that_exists_with_those_flags(page, command):
    target, sub, flags = target_of(command)
    assert exists(target), f"{page.name}: `{command}` names {target}, which does not exist"
    if target.startswith(("bench.", "bench/")) or not (target.endswith(".py") or target.split(".")[0] in PROJECT):
        return  # benchmarks, and tools not of the project (pip, pdb): existence is enough
    unknown = [flag for flag in flags if flag not in flags_of(target, sub)]
    assert unknown == [], f"{page.name}: `{command}` passes {unknown}, which {target} does not have"


def formula_tables(page: Path) -> list[list[str]]:
    """The code cells (backquoted) of each table whose header begins with `| formula`."""
    tables, current = [], None
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("| formula"):
            current = []
            tables.append(current)
        elif current is not None and line.startswith("|"):
            cells = line.strip("|").split("|")[1:]
            current += [code for cell in cells for code in re.findall(r"`([^`]+)`", cell)]
        else:
            current = None
    return tables


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_code_cell_of_a_formula_table_is_in_the_file_the_page_names(page):
    named = [REPO / path for path in re.findall(r"`((?:minilm|tokenizer|data|common)/[\w/]+\.py)", page.read_text())]
    sources = "\n".join(path.read_text() for path in named if path.is_file())
    missing = [code for table in formula_tables(page) for code in table if code not in sources]
    assert missing == [], f"{page.name}: these code cells are in none of {[p.name for p in named]}: {missing}"


def test_the_command_check_sees_a_flag_that_does_not_exist():
    target, sub, flags = target_of("python finetune.py predict --ckpt out/x --max_new_token 5 'a text'")
    assert (target, sub) == ("finetune.py", "predict")
    assert [flag for flag in flags if flag not in flags_of(target, sub)] == ["--max_new_token"]


def test_the_formula_check_reads_the_code_cells_of_a_table(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("| formula | code |\n|---|---|\n| y = P v | `probs @ v` |\n\nprose `not a cell`\n")
    assert formula_tables(page) == [["probs @ v"]]
