"""Every command answers a user's mistake with one line, `error: <message>` naming the flag or file, and
exit status 2; never a traceback. The table runs each command's main through run_command, exactly what its
`if __name__ == "__main__"` does; one case per command also runs as a real process."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import finetune
import sample
import train_bert
import train_gpt
from common.errors import run_command
from data import assets
from finetune_fixtures import VOCAB, save_bert_base, save_gpt_base, tiny_bert
from minilm import parity, save_pretrained
from minilm.serve import __main__ as serve
from test_train_gpt import TINY_FLAGS, write_text
from tokenizer import __main__ as tokenizer_cli

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"train_gpt": train_gpt.main, "train_bert": train_bert.main, "finetune": finetune.main,
            "sample": sample.main, "tokenizer": tokenizer_cli.main, "parity": parity.main, "assets": assets.main,
            "serve": serve.main}
FT_OUT = ["--out_dir", "{root}/runs/finetune", "--device", "cpu"]
FAST_GPT = ["--device", "cpu", "--progress", "false", "--max_iters", "2", "--eval_interval", "2", "--eval_iters", "1"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The files the bad inputs point at: a text, a folder, a GPT and a BERT checkpoint, broken configs."""
    root = tmp_path_factory.mktemp("bad_inputs")
    write_text(root / "text.txt")
    (root / "folder").mkdir()
    (root / "file").write_text("a file, not a folder")
    (root / "one_document.txt").write_text("A single paragraph,\nwith no blank line in it.\n")
    save_gpt_base(root / "gpt")
    save_bert_base(root / "bert")
    list_config = save_gpt_base(root / "list_config")
    (list_config / "config.json").write_text("[1, 2, 3]")
    no_weights = save_gpt_base(root / "no_weights")
    (no_weights / "model.safetensors").unlink()
    (root / "hf_list").mkdir()
    (root / "hf_list" / "config.json").write_text("[]")
    (root / "llama").mkdir()
    (root / "llama" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (root / "empty.txt").write_text(" \n\n")
    (root / "latin1.csv").write_bytes("text,label\nun film tr\xe8s bon,pos\nennuyeux,neg\n".encode("latin-1"))
    (root / "blank_label.csv").write_text("text,label\na good film,pos\na dull film,\nfine,pos\n")
    for name, damage in [("hf_truncated", lambda b: b[:len(b) // 2]), ("hf_random", lambda b: bytes(range(256)) * 8)]:
        folder = root / name
        save_pretrained(tiny_bert(), folder)
        (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
        torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()
        (folder / "pytorch_model.bin").write_bytes(damage((folder / "pytorch_model.bin").read_bytes()))
    return root


CASES = [  # (command, arguments with {root}, what the message must name)
    ("train_gpt", ["--val_fraction", "0"], "val_fraction"),
    ("train_gpt", ["--data", "{root}/folder"], "folder is a folder"),
    ("train_gpt", ["--data", "{root}/nope.txt"], "nope.txt: no such file"),
    ("train_gpt", ["--data", "{root}/text.txt", "--out_dir", "{root}/file"], "is a file, not a folder"),
    ("train_gpt", ["--n_embd", "30", "--n_head", "4"], "n_embd (30) must be divisible by n_head (4)"),
    ("train_gpt", ["--lr", "-1"], "lr must be a positive number"),
    ("train_gpt", ["--dtype", "float8"], "--dtype must be one of"),
    ("train_gpt", ["--n_layers", "2"], "unknown flag --n_layers"),
    ("train_gpt", ["--resume", "--out_dir", "{root}/folder"], "no checkpoint at"),
    ("train_gpt", ["--special_tokens", "maybe"], "--special_tokens must be one of"),
    ("train_gpt", ["--device", "tpu"], "--device 'tpu': not a device"),
    ("train_gpt", ["--data", "{root}/text.txt", "--out_dir", ""], "--out_dir is empty"),
    ("train_gpt", ["--data", "{root}/text.txt", "--out_dir", "/proc/minilm-run"], "cannot be created"),
    ("train_gpt", ["--data", "{root}/text.txt", "--out_dir", "{root}/file/run"], "file is a file, not a folder"),
    ("train_bert", ["--mlm_prob", "1.5"], "mlm_prob"),
    ("train_bert", ["--data", "{root}/one_document.txt"], "document"),
    ("train_bert", ["--max_seq_len", "4"], "max_seq_len"),
    ("train_bert", ["--init_from", "{root}/nowhere"], "--init_from"),
    ("train_bert", ["--init_from", "{root}/gpt"], "a GPT checkpoint, not one of train_bert.py's"),
    ("finetune", ["--recipe", "nope"], "--recipe"),
    ("finetune", ["--base", "{root}/nowhere"], "--base"),
    ("finetune", ["--base", "{root}/bert", "--data", "{root}/nope.csv"], "--data"),
    ("finetune", ["--method", "magic"], "--method"),
    ("finetune", ["--task", "lm", "--base", "{root}/bert"], "--task lm continues a GPT"),
    ("finetune", ["--val_fraction", "0"], "val_fraction"),
    ("finetune", ["predict", "--ckpt", "{root}/nowhere", "a text"], "no checkpoint at"),
    ("finetune", ["predict", "--ckpt", "{root}/gpt", "a text"], "is not a finetune.py checkpoint"),
    ("finetune", ["predict", "--ckpt", "{root}/gpt"], "texts"),
    ("finetune", ["--task", "classify", "--base", "{root}/bert", "--data", "{root}/latin1.csv", *FT_OUT],
     "latin1.csv, line 2: not UTF-8 text (byte 0xe8)"),
    ("finetune", ["--task", "classify", "--base", "{root}/bert", "--data", "{root}/blank_label.csv", *FT_OUT],
     "blank_label.csv, row 3: the 'label' cell is blank"),
    ("finetune", ["--task", "classify", "--base", "{root}/hf_truncated", "--data", "{root}/text.txt", *FT_OUT],
     "pytorch_model.bin is not a readable PyTorch checkpoint"),
    ("finetune", ["--task", "classify", "--base", "{root}/hf_random", "--data", "{root}/text.txt", *FT_OUT],
     "pytorch_model.bin is not a readable PyTorch checkpoint"),
    ("serve", ["--ckpt", "{root}/hf_truncated"], "pytorch_model.bin is not a readable PyTorch checkpoint"),
    ("serve", ["--ckpt", "{root}/hf_random"], "pytorch_model.bin is not a readable PyTorch checkpoint"),
    ("sample", ["--ckpt", "{root}/gpt", "--temperature", "nan"], "--temperature"),
    ("sample", ["--ckpt", "{root}/gpt", "--temperature", "-1"], "--temperature"),
    ("sample", ["--ckpt", "{root}/gpt", "--top_p", "2"], "--top_p"),
    ("sample", ["--ckpt", "{root}/nowhere"], "no checkpoint at"),
    ("sample", ["--ckpt", "{root}/list_config"], "holds a JSON list"),
    ("sample", ["--ckpt", "{root}/no_weights"], "model.safetensors is missing"),
    ("sample", ["--ckpt", "{root}/gpt", "--prompt", "Zounds"], "--prompt"),
    ("sample", [], "--ckpt"),
    ("sample", ["--ckpt", "{root}/gpt", "--device", "cuda:x"], "--device 'cuda:x'"),
    ("sample", ["--ckpt", "{root}/gpt", "--num_samples", str(10**12)], "needs about"),
    ("sample", ["--ckpt", "{root}/gpt", "--max_new_tokens", str(10**14)], "ask for fewer samples or tokens"),
    ("tokenizer", ["encode", "--tokenizer", "nope", "text"], "--tokenizer 'nope'"),
    ("tokenizer", ["train", "--kind", "bpe", "{root}/text.txt", "{root}/tok"], "vocab_size"),
    ("tokenizer", ["train", "--kind", "char", "{root}/nope.txt", "{root}/tok"], "nope.txt: no such file"),
    ("tokenizer", ["train", "--kind", "magic", "{root}/text.txt", "{root}/tok"], "--kind"),
    ("tokenizer", ["train", "--kind", "bpe", "--vocab_size", "300", "{root}/empty.txt", "{root}/tok"],
     "the training text is empty (or only whitespace)"),
    ("tokenizer", ["train", "--kind", "bpe", "{root}/text.txt", "{root}/tok"], "--vocab_size"),
    ("tokenizer", ["train", "--kind", "sentencepiece", "--vocab_size", "5", "{root}/text.txt", "{root}/tok"],
     "vocab_size of 5"),
    ("tokenizer", ["train", "--kind", "char", "{root}/text.txt", "{root}/file"], "OUT {root}/file is a file"),
    ("tokenizer", ["train", "--kind", "char", "{root}/text.txt", "/proc/minilm-tok"], "cannot be created"),
    ("parity", ["{root}/nowhere"], "nowhere is not a folder"),
    ("parity", ["{root}/hf_list"], "holds a JSON list"),
    ("parity", ["{root}/llama"], "config.json lacks vocab_size, hidden_size"),
    ("assets", ["no-such-asset"], "unknown asset 'no-such-asset'"),
]


RUN_FLAGS = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "8", "--batch_size", "4",
             "--num_samples", "0", *FAST_GPT]


@pytest.fixture(scope="module")
def run(files):
    """One tiny train_gpt.py run, copied by each case that damages its config.json."""
    train_gpt.main(["--data", str(files / "text.txt"), "--out_dir", str(files / "run"), *RUN_FLAGS])
    return files / "run"


DAMAGED_CONFIGS = {  # an edit of config.json -> what the error says
    "no model_class": (lambda c: c.pop("model_class"), "names no model_class"),
    "model_class a list": (lambda c: c.update(model_class=["GPT"]), "['GPT']"),
    "no model": (lambda c: c.pop("model"), "has no 'model' settings"),
    "model a list": (lambda c: c.update(model=[1]), "has no 'model' settings"),
    "n_embd a string": (lambda c: c["model"].update(n_embd="16"), "n_embd must be a positive integer, got '16'"),
    "data a string": (lambda c: c.update(data="x"), "'data' is 'x', not an object"),
    "data_sha256 a number": (lambda c: c.update(data_sha256=5), "'data_sha256' is 5"),
    "lr a string": (lambda c: c["train"].update(lr="x"), "lr is 'x', not a float"),
    "an unknown train setting": (lambda c: c["train"].update(lr_typo=1), "['lr_typo'], which are not TrainConfig"),
}


@pytest.mark.parametrize("damage, named", DAMAGED_CONFIGS.values(), ids=DAMAGED_CONFIGS)
@pytest.mark.parametrize("command", ["resume", "sample"])
def test_a_damaged_config_json_is_one_error_line_for_resume_and_sample_alike(run, command, damage, named, tmp_path,
                                                                              capsys):
    damaged = shutil.copytree(run, tmp_path / "run")
    for folder in ("ckpt", "best"):
        config = json.loads((damaged / folder / "config.json").read_text())
        damage(config)
        (damaged / folder / "config.json").write_text(json.dumps(config))
    if command == "resume":
        argv = ["--data", str(run.parent / "text.txt"), "--out_dir", str(damaged), "--resume", *FAST_GPT]
        status = run_command(train_gpt.main, argv)
    else:
        status = run_command(sample.main, ["--ckpt", str(damaged / "best"), "--max_new_tokens", "2"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and "Traceback" not in err, err
    assert named in err


def arguments(template: list[str], root: Path) -> list[str]:
    return [arg.replace("{root}", str(root)) for arg in template]


@pytest.mark.parametrize("command, template, named", CASES, ids=[f"{c}-{' '.join(t)}" for c, t, _ in CASES])
def test_a_bad_input_gets_one_error_line_naming_it_and_exit_2(command, template, named, files, capsys, monkeypatch):
    monkeypatch.setenv("MINILM_CACHE", str(files / "cache"))
    argv = arguments(template, files)
    if command == "train_gpt" and "--data" not in argv and "--resume" not in argv:
        argv += ["--data", str(files / "text.txt")]
    if command in ("train_gpt", "train_bert"):
        fast = FAST_GPT[2:] if "--device" in argv else FAST_GPT  # FAST_GPT starts with --device cpu
        argv += [*fast, "--out_dir", str(files / "runs" / command)] if "--out_dir" not in argv else fast
    status = run_command(COMMANDS[command], argv)
    captured = capsys.readouterr()
    assert status == 2, captured.out[-2000:] + captured.err[-2000:]
    assert captured.err.startswith("error: ") and "Traceback" not in captured.err
    assert arguments([named], files)[0] in captured.err


@pytest.mark.parametrize("failure", [lambda: torch.empty(1 << 62, dtype=torch.uint8),  # more than any address space
                                     lambda: bytearray(1 << 62)], ids=["torch", "python"])
def test_an_allocation_that_fails_is_an_out_of_memory_error_line(failure, capsys):
    assert run_command(lambda argv: failure()) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory") and "ask for less" in err


def test_any_other_runtime_error_keeps_its_traceback():
    with pytest.raises(RuntimeError, match="a bug"):
        run_command(lambda argv: (_ for _ in ()).throw(RuntimeError("a bug")))


def test_data_assets_help_lists_the_assets_and_exits_0():
    result = subprocess.run([sys.executable, "-m", "data.assets", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "shakespeare-plays" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    ["train_gpt.py", "--val_fraction", "0"], ["train_bert.py", "--mlm_prob", "2"], ["finetune.py", "--recipe", "x"],
    ["finetune.py", "predict", "--ckpt", "nowhere", "text"], ["sample.py", "--ckpt", "nowhere"],
    ["-m", "tokenizer", "encode", "--tokenizer", "nope", "x"], ["-m", "minilm.parity", "nowhere"],
    ["-m", "data.assets", "no-such-asset"],
], ids=lambda c: " ".join(c[:2]))
def test_each_command_run_as_a_process_exits_2_without_a_traceback(command, tmp_path):
    result = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True,
                            env={"MINILM_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
