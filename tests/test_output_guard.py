"""Every command that writes goes through common/output_guard.py: run against a table of dangerous targets
(a folder of the user's files, a run, another checkpoint, the input itself, the folder holding it, a path
inside it), each is refused with `error: ...` and exit status 2 before it changes anything (every file of the
tree is hashed before and after), --overwrite never lets it write over an input, and it does let it write
over the rest. Running a command again over its own earlier output (its marker) needs no flag.

The commands run in this process, on one shared tree of tiny checkpoints and files (the module's fixture).
"""

import contextlib
import hashlib
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import finetune
import train_bert
import train_gpt
from common.errors import run_command
from common.output_guard import FILE, FOLDER, MANIFEST, RUN, OutputRefused, guard_output, mark_output
from data import chatterbot
from finetune_fixtures import save_bert_base, save_gpt_base
from minilm.compress.__main__ import main as compress
from minilm.hf import export
from minilm.viz import __main__ as viz
from minilm.viz import docs_figures
from test_train_gpt import TINY_FLAGS, write_text
from tokenizer import __main__ as tokenizer_command

pytestmark = pytest.mark.usefixtures("one_thread")

SHORT = ["--max_iters", "2", "--eval_interval", "2", "--eval_iters", "1", "--num_samples", "0"]
BERT_FLAGS = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "32", "--max_seq_len", "32",
              "--batch_size", "4", "--max_iters", "2", "--warmup_iters", "1", "--eval_interval", "2",
              "--eval_iters", "1", "--device", "cpu", "--progress", "false", "--tokenizer_vocab_size", "120"]
FINETUNE_FLAGS = ["--task", "lm", "--method", "full", "--max_iters", "2", "--batch_size", "4", "--max_length", "16",
                  "--warmup_iters", "1", "--eval_interval", "2", "--eval_iters", "1", "--device", "cpu",
                  "--progress", "false"]


@dataclass
class World:
    """The shared tree: inputs, and things no command may touch unasked."""
    root: Path
    text: Path = field(init=False)  # corpus/text.txt: train_gpt's --data, finetune's --data, the tokenizer's corpus
    docs: Path = field(init=False)  # corpus/docs.txt: train_bert's --data
    gpt_run: Path = field(init=False)  # a run (best/, ckpt/, metrics.jsonl) of a tiny char GPT: the model input
    bert_run: Path = field(init=False)  # a run whose best/ is train_bert's --init_from
    other_run: Path = field(init=False)  # a run that is no command's input
    other_ckpt: Path = field(init=False)  # a checkpoint that is no command's input
    user_files: Path = field(init=False)  # a folder of the user's files
    user_file: Path = field(init=False)  # one file of the user's

    def __post_init__(self):
        root = self.root
        (root / "corpus").mkdir()
        self.text = write_text(root / "corpus" / "text.txt", n_lines=60)
        lines = self.text.read_text().splitlines()
        self.docs = root / "corpus" / "docs.txt"  # documents of 10 lines, blank lines between them
        self.docs.write_text("\n\n".join("\n".join(lines[i:i + 10]) for i in range(0, len(lines), 10)) + "\n")
        self.gpt_run = root / "gpt_run"
        save_gpt_base(self.gpt_run / "best", self.text.read_text())
        shutil.copytree(self.gpt_run / "best", self.gpt_run / "ckpt")
        (self.gpt_run / "metrics.jsonl").write_text('{"step": 1, "train_loss": 3.0}\n')
        self.bert_run = root / "bert_run"
        save_bert_base(self.bert_run / "best")
        self.other_run = root / "other_run"
        shutil.copytree(self.gpt_run, self.other_run)
        self.other_ckpt = save_bert_base(root / "other_ckpt")
        self.user_files = root / "user_files"
        self.user_files.mkdir()
        (self.user_files / "notes.txt").write_text("my notes")
        (self.user_files / "photo.jpg").write_bytes(bytes(range(256)))
        self.user_file = root / "user_file.txt"
        self.user_file.write_text("my file")


@dataclass
class Command:
    main: object
    argv: object  # (world, out) -> the arguments of a run that works and writes out
    input: object  # (world) -> the input the table puts its targets around; None: the command has none
    kind: str  # what it writes (common/output_guard.py): FOLDER, FILE or RUN
    refusal_argv: object = lambda w: []  # more inputs, given only in the refusals (they would not train)


COMMANDS = {
    "train_gpt": Command(train_gpt.main, lambda w, out: ["--data", w.text, "--out_dir", out, *TINY_FLAGS, *SHORT],
                         lambda w: w.text, RUN),
    "train_bert": Command(train_bert.main, lambda w, out: ["--data", w.docs, "--out_dir", out, *BERT_FLAGS],
                          lambda w: w.bert_run / "best", RUN, lambda w: ["--init_from", w.bert_run / "best"]),
    "finetune": Command(finetune.main, lambda w, out: ["--base", w.gpt_run, "--data", w.text, "--out_dir", out,
                                                       *FINETUNE_FLAGS], lambda w: w.gpt_run / "best", RUN),
    "quantize": Command(compress, lambda w, out: ["quantize", w.gpt_run / "best", out, "--evaluate", "false"],
                        lambda w: w.gpt_run / "best", FOLDER),
    "prune": Command(compress, lambda w, out: ["prune", w.gpt_run / "best", out, "--heads", "0:0", "--evaluate",
                                               "false"], lambda w: w.gpt_run / "best", FOLDER),
    "hf.export": Command(export.main, lambda w, out: [w.gpt_run / "best", out], lambda w: w.gpt_run / "best", FOLDER),
    "viz attention": Command(viz.main, lambda w, out: ["attention", "--ckpt", w.gpt_run / "best", "--text", "to be",
                                                       "-o", out], lambda w: w.gpt_run / "best", FILE),
    "viz figures": Command(viz.main, lambda w, out: ["figures", "--gpt", w.gpt_run, "--out", out],
                           lambda w: w.gpt_run, FOLDER),
    "tokenizer train": Command(tokenizer_command.main, lambda w, out: ["train", "--kind", "char", w.text, out],
                               lambda w: w.text, FOLDER),
    "chatterbot --qa_text": Command(chatterbot.main, lambda w, out: ["--qa_text", out], None, FILE),
}

# Each target: (its path in the world, what the refusal says for a folder-writing command, for a file-writing one).
OTHERS = {
    "a folder of user files": (lambda w, c: w.user_files, "did not write", "is a folder"),
    "a user file": (lambda w, c: w.user_file, "is a file, not a folder", "did not write"),
    "a run folder": (lambda w, c: w.other_run, "ckpt, best, metrics.jsonl", "is a folder"),
    "another checkpoint": (lambda w, c: w.other_ckpt, "is a checkpoint folder", "is a folder"),
    "a path inside a checkpoint": (lambda w, c: w.other_ckpt / "new", "lies inside the checkpoint folder",
                                   "lies inside the checkpoint folder"),
}
INPUTS = {  # refused even with --overwrite
    "the input itself": lambda w, c: c.input(w),
    "the folder holding the input": lambda w, c: c.input(w).parent,
    "a path inside the input": lambda w, c: c.input(w) / "new",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("world")
        patch.setenv("MINILM_CACHE", str(root / "cache"))  # asset and token caches stay in the tree
        yield World(root)


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file and folder under root: its sha256, or "folder"."""
    return {str(p.relative_to(root)): "folder" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def run(main, argv, capsys) -> tuple[int, str]:
    """main(argv) through run_command, as the command line runs it: (exit status, stderr)."""
    capsys.readouterr()
    with contextlib.redirect_stdout(io.StringIO()):
        status = run_command(main, [str(a) for a in argv])
    return status, capsys.readouterr().err


def refusal_cases():
    for name, command in COMMANDS.items():
        for target in OTHERS:
            yield pytest.param(name, target, id=f"{name}: {target}")
        for target in INPUTS if command.input is not None else ():
            yield pytest.param(name, target, id=f"{name}: {target}, --overwrite")


@pytest.mark.parametrize("name, target", refusal_cases())
def test_a_dangerous_target_is_refused_before_anything_changes(name, target, world, capsys):
    command = COMMANDS[name]
    if target in INPUTS:
        out, flags, phrase = INPUTS[target](world, command), ["--overwrite"], "an input of this command"
    else:
        where, folder_phrase, file_phrase = OTHERS[target]
        out, flags, phrase = where(world, command), [], file_phrase if command.kind == FILE else folder_phrase
    before = tree_hashes(world.root)
    status, err = run(command.main, [*command.argv(world, out), *command.refusal_argv(world), *flags], capsys)
    assert status == 2 and err.startswith("error: ") and "Traceback" not in err, err
    assert str(out) in err and phrase in err, err
    if target in INPUTS:
        assert "no flag allows this" in err
    elif "is a f" not in phrase:  # a refusal that --overwrite lifts names it (a run: --resume too)
        assert "--overwrite" in err
    assert tree_hashes(world.root) == before


@pytest.fixture
def figures_drawn_quickly(monkeypatch, world):
    """viz figures with its drawing replaced by one small file: the guard, not the pictures, is under test."""
    def draw_all(out, gpt_run, minilm_folder):
        out.mkdir(parents=True, exist_ok=True)
        (out / "figure.png").write_bytes(b"png")
        return [out / "figure.png"]
    monkeypatch.setattr(docs_figures, "draw_all", draw_all)
    monkeypatch.setattr(docs_figures, "base_model_folder", lambda name: world.other_ckpt)


@pytest.mark.parametrize("name", ["viz attention", "viz figures", "tokenizer train"])
def test_running_again_over_its_own_output_needs_no_flag(name, world, tmp_path, capsys, figures_drawn_quickly):
    command, out = COMMANDS[name], tmp_path / ("page.html" if name == "viz attention" else "out")
    for _ in range(2):
        status, err = run(command.main, command.argv(world, out), capsys)
        assert status == 0, err


def test_a_run_that_never_saved_leaves_an_out_dir_a_fresh_run_may_use(world, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "run.lock").write_text("12345\n")  # all a run leaves that stopped before its first save
    status, err = run(train_gpt.main, COMMANDS["train_gpt"].argv(world, tmp_path / "out"), capsys)
    assert status == 0 and (tmp_path / "out" / "best").is_dir(), err


@pytest.mark.parametrize("name", [name for name in COMMANDS if name != "chatterbot --qa_text"])
def test_overwrite_lets_a_command_write_over_what_is_not_its_input(name, world, tmp_path, capsys,
                                                                   figures_drawn_quickly):
    command = COMMANDS[name]
    if command.kind == FILE:
        out = Path(shutil.copy(world.user_file, tmp_path / "page.html"))
    else:
        out = shutil.copytree(world.user_files, tmp_path / "user_files")
    status, err = run(command.main, [*command.argv(world, out), "--overwrite"], capsys)
    assert status == 0, err
    assert out.is_file() if command.kind == FILE else any(p.name not in ("notes.txt", "photo.jpg") for p in out.iterdir())


@pytest.mark.parametrize("name", ["quantize", "hf.export"])
def test_overwrite_lets_a_command_replace_another_checkpoint(name, world, tmp_path, capsys):
    out = shutil.copytree(world.other_ckpt, tmp_path / "ckpt")
    status, err = run(COMMANDS[name].main, [*COMMANDS[name].argv(world, out), "--overwrite"], capsys)
    assert status == 0, err


# ---- the guard itself ----------------------------------------------------------------------------------

def test_a_folder_marked_by_another_command_is_not_this_ones(tmp_path):
    mark_output(tmp_path / "out", "python -m tokenizer train")
    guard_output(tmp_path / "out", "OUT", "python -m tokenizer train")  # its own: allowed
    with pytest.raises(OutputRefused, match="did not write"):
        guard_output(tmp_path / "out", "--out", "python -m minilm.viz figures")
    assert (tmp_path / "out" / MANIFEST).is_file()


def test_an_input_reached_through_a_symbolic_link_is_still_the_input(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "ckpt")
    with pytest.raises(OutputRefused, match="is CKPT"):
        guard_output(tmp_path / "link", "OUT", "a command", inputs={"CKPT ckpt": tmp_path / "ckpt"}, overwrite=True)


def test_resuming_a_run_needs_no_overwrite_but_never_writes_over_an_input(tmp_path):
    (tmp_path / "run" / "best").mkdir(parents=True)
    guard_output(tmp_path / "run", "--out_dir", "train", kind=RUN, resume=True)
    with pytest.raises(OutputRefused, match="an input of this command"):
        guard_output(tmp_path / "run", "--out_dir", "train", kind=RUN, resume=True,
                     inputs={"--init_from run/best": tmp_path / "run" / "best"})


def test_an_empty_output_is_refused_not_taken_for_the_current_folder():
    with pytest.raises(OutputRefused, match="--out_dir is empty"):
        guard_output("", "--out_dir", "train_gpt.py", kind=RUN, overwrite=True)
