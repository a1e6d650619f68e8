"""The floor plan holds: every import points down, and no module imports itself back in a circle.

    common/             stdlib only: atomic writes, the output guard, the error types, the GGUF reader
    tokenizer/          + common
    minilm/model/       the Transformer: torch, numpy, the stdlib, itself
    minilm/compress/    + minilm/model, common (int8 modules and head pruning, which the loaders rebuild)
    minilm/training/    + minilm/model, minilm/compress, common            minilm/hf/   + minilm/model, common
    minilm/peft/        + minilm/model
    minilm/gguf/        + minilm/model, common (GGUF tensors into minilm's models; common/gguf.py reads the file)
    minilm/finetune/    + minilm/{model,compress,training,hf,peft}, tokenizer, common
    minilm/viz/, minilm/trace/  + all of the above but each other (they look inside any model folder)
    minilm/serve/       + the same (HTTP in front of any model folder; it encodes text as fine-tuning does,
                        through minilm/finetune/encode.py)
    minilm/assistant/   + minilm/finetune, common (the chatterbot assistant; its __main__.py reads data/)
    minilm/chat/        + minilm/{model,gguf,hf,training}, tokenizer, common (a conversation with a chat model)
    minilm/__init__.py  the facade: minilm/model, minilm/hf, minilm/gguf (from_pretrained of a .gguf file)
    data/               + tokenizer, minilm, common (fetching assets, preparing corpora; no library room
                        imports it: what the library needs, such as fine-tuning's text -> ids, lives below)
    exercises/          + minilm, tokenizer, common (learning material that compares with the library)
    scripts, bench/, python -m commands: anything but another script. A command is a __main__.py, or a module
                        COMMAND_MODULES names (minilm/parity.py; minilm/hf/export/__init__.py, which reads checkpoints
                        and tokenizers from inside minilm/hf/; minilm/viz/docs_figures.py). A named one that
                        reads data/ may not sit in a room other library rooms import (compress/, hf/, ...):
                        there only __main__.py may (python -m minilm.compress is compress/__main__.py)

Imports are read with `ast`, so those inside functions (lazy imports) count too. tests/ may import
anything and is not checked.
"""

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"train_gpt", "train_bert", "finetune", "sample"}
MINILM_ROOMS = ("minilm.model", "minilm.training", "minilm.hf", "minilm.peft", "minilm.finetune", "minilm.viz",
                "minilm.trace", "minilm.compress", "minilm.serve", "minilm.assistant", "minilm.gguf",
                "minilm.chat")
READ_DATA = set()  # rooms that import data/ (which data/ may therefore not import): none
LOOKING_INSIDE = {"minilm.model", "minilm.training", "minilm.hf", "minilm.peft", "minilm.finetune", "tokenizer", "common"}
ALLOWED = {  # layer -> the project layers it may import (besides itself)
    "common": set(),
    "tokenizer": {"common"},
    "minilm.model": set(),
    "minilm.compress": {"minilm.model", "common"},
    "minilm.training": {"minilm.model", "minilm.compress", "common"},
    "minilm.hf": {"minilm.model", "common"},
    "minilm.peft": {"minilm.model"},
    "minilm.gguf": {"minilm.model", "common"},
    "minilm.chat": {"minilm.model", "minilm.gguf", "minilm.hf", "minilm.training", "tokenizer", "common"},
    "minilm.finetune": {"minilm.model", "minilm.compress", "minilm.training", "minilm.hf", "minilm.peft", "tokenizer",
                        "common"},
    "minilm.viz": LOOKING_INSIDE,  # pictures and the attention page, of any model folder
    "minilm.trace": LOOKING_INSIDE,  # the shape trace, of any model folder
    "minilm.serve": LOOKING_INSIDE,  # HTTP in front of any model folder, encoding as fine-tuning did
    "minilm.assistant": {"minilm.finetune", "common"},  # retrieval and replies; its command reads data/
    "minilm": {"minilm.model", "minilm.hf", "minilm.gguf"},
    "data": {"common", "tokenizer", "minilm", *(set(MINILM_ROOMS) - READ_DATA)},
    "exercises": {"common", "tokenizer", "minilm", *MINILM_ROOMS},
}
ENTRY_POINTS = {"script", "bench", "command"}  # may import every library layer, never a script
MODEL_THIRD_PARTY = {"torch", "numpy"}
COMMAND_MODULES = {"minilm.parity", "minilm.hf.export", "minilm.viz.docs_figures"}  # commands that are not a __main__.py
# The rooms that library rooms import: a command module they hold, other than __main__.py, may not read data/.
IMPORTED_ROOMS = set().union(*(ALLOWED[layer] for layer in (*MINILM_ROOMS, "tokenizer", "common", "minilm")))


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str, path: Path | None = None) -> str | None:
    """The layer a project module belongs to; None for third-party and standard-library modules."""
    if path is not None and (path.name == "__main__.py" or module in COMMAND_MODULES):
        return "command"
    top = module.split(".")[0]
    if top in SCRIPTS:
        return "script"
    if top == "bench":
        return "bench"
    if top == "minilm":
        room = ".".join(module.split(".")[:2])
        return room if room in MINILM_ROOMS else "minilm"
    return top if top in ("common", "tokenizer", "data", "exercises") else None


def imports_of(path: Path, module: str, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, relative ones resolved. For `from pkg import x`
    where pkg.x is a module of the project, the module pkg.x is named."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in known else base, node.lineno))
    return found


def project_files(root: Path) -> dict[str, Path]:
    files = [p for p in root.rglob("*.py") if not ({"tests", ".git"} & set(p.relative_to(root).parts))]
    return {module_name(p, root): p for p in files}


def layering_problems(root: Path) -> list[str]:
    """Every import against the floor plan, and every import cycle, each naming the files involved."""
    files = project_files(root)
    known = set(files)
    problems, graph = [], {}
    for module, path in sorted(files.items()):
        layer = layer_of(module, path)
        graph[module] = set()
        for imported, line in imports_of(path, module, known):
            where = f"{path.relative_to(root)}:{line}"
            target_layer = layer_of(imported)
            top = imported.split(".")[0]
            if target_layer is None:
                if layer == "minilm.model" and top not in MODEL_THIRD_PARTY | set(sys.stdlib_module_names):
                    problems.append(f"{where} imports {imported}: minilm/model/ may import only torch, numpy "
                                    "and the standard library")
                continue
            target = next((m for m in (imported, imported.rsplit(".", 1)[0]) if m in known), imported)
            graph[module].add(target)
            target_file = files[target].relative_to(root) if target in files else imported
            if target_layer == "script" and target != module:
                problems.append(f"{where} imports the script {target_file}: scripts never import each other; "
                                "move what they share into the library")
            elif target_layer == "data" and module in COMMAND_MODULES and layer_of(module) in IMPORTED_ROOMS:
                problems.append(f"{where} imports {target_file}: a command that reads data/ inside "
                                f"{layer_of(module)}, a room other library rooms import, belongs in its __main__.py")
            elif layer in ENTRY_POINTS or target_layer == layer:
                continue
            elif target_layer in ENTRY_POINTS or target_layer not in ALLOWED[layer]:
                problems.append(f"{where} imports {target_file}: {layer} may not import {target_layer} "
                                f"(allowed: {', '.join(sorted(ALLOWED[layer])) or 'nothing of the project'})")
    problems += [f"import cycle: {' -> '.join(str(files[m].relative_to(root)) for m in cycle)}"
                 for cycle in find_cycles(graph)]
    return problems


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules, as a path that ends where it starts."""
    cycles, done = [], set()
    for start in sorted(graph):
        stack, on_path = [(start, iter(sorted(graph[start])))], [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.pop()
                done.add(node)
            elif child in on_path:
                cycle = on_path[on_path.index(child):] + [child]
                if not any(set(cycle) == set(c) for c in cycles):
                    cycles.append(cycle)
            elif child not in done and child in graph:
                stack.append((child, iter(sorted(graph[child]))))
                on_path.append(child)
    return cycles


def test_the_project_follows_the_floor_plan():
    assert layering_problems(REPO) == []


# ---- the checker itself fails on what it should ---------------------------------------------------

def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source)
    return root


def test_an_upward_import_is_named_with_both_files(tmp_path):
    root = write_tree(tmp_path, {"minilm/__init__.py": "", "minilm/model/__init__.py": "",
                                 "minilm/model/gpt.py": "def f():\n    from minilm.training import trainer\n",
                                 "minilm/training/__init__.py": "", "minilm/training/trainer.py": ""})
    [problem] = layering_problems(root)
    assert "minilm/model/gpt.py:2" in problem and "minilm/training/trainer.py" in problem


def test_a_lazy_import_cycle_is_found(tmp_path):
    root = write_tree(tmp_path, {"minilm/__init__.py": "", "minilm/model/__init__.py": "",
                                 "minilm/model/a.py": "from . import b\n",
                                 "minilm/model/b.py": "def f():\n    from .a import g\n"})
    assert layering_problems(root) == ["import cycle: minilm/model/a.py -> minilm/model/b.py -> minilm/model/a.py"]


def test_a_script_importing_another_script_is_refused(tmp_path):
    root = write_tree(tmp_path, {"finetune.py": "from train_gpt import Task\n", "train_gpt.py": ""})
    [problem] = layering_problems(root)
    assert "finetune.py:1 imports the script train_gpt.py" in problem


def test_the_model_may_not_import_a_third_party_library(tmp_path):
    root = write_tree(tmp_path, {"minilm/__init__.py": "", "minilm/model/__init__.py": "",
                                 "minilm/model/gpt.py": "import safetensors\nimport math\nimport torch\n"})
    [problem] = layering_problems(root)
    assert "minilm/model/gpt.py:1 imports safetensors" in problem


def test_the_tokenizer_may_not_fetch_through_data(tmp_path):
    root = write_tree(tmp_path, {"tokenizer/__init__.py": "", "tokenizer/factory.py": "from data.assets import fetch\n",
                                 "tokenizer/__main__.py": "from data.assets import fetch\n",
                                 "data/__init__.py": "", "data/assets.py": ""})
    [problem] = layering_problems(root)  # the command (__main__.py) may; the library module may not
    assert problem.startswith("tokenizer/factory.py:1 imports data/assets.py")


def test_a_named_command_in_an_imported_room_may_not_read_data(tmp_path):
    reads_data = "from data.assets import fetch\n"
    root = write_tree(tmp_path, {"minilm/__init__.py": "", "minilm/hf/__init__.py": "", "minilm/hf/export.py": reads_data,
                                 "minilm/viz/__init__.py": "", "minilm/viz/docs_figures.py": reads_data,
                                 "data/__init__.py": "", "data/assets.py": ""})
    [problem] = layering_problems(root)  # viz/ is imported by no library room: its named command may read data/
    assert problem.startswith("minilm/hf/export.py:1 imports data/assets.py") and "__main__.py" in problem


def test_the_service_may_not_read_data(tmp_path):
    root = write_tree(tmp_path, {"minilm/__init__.py": "", "minilm/serve/__init__.py": "",
                                 "minilm/serve/encode.py": "from data.finetune_data import FinetuneDataError\n",
                                 "data/__init__.py": "", "data/finetune_data.py": ""})
    [problem] = layering_problems(root)
    assert problem.startswith("minilm/serve/encode.py:1 imports data/finetune_data.py")


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_every_layer_is_a_folder_of_the_project(layer):
    path = REPO / layer.replace(".", "/")
    assert path.is_dir() and (path / "__init__.py").exists()
