"""Every command that takes a model path takes a model alias too (data/assets.py's model_path): smollm2 names
SmolLM2's GGUF file in the asset cache. A tiny GGUF written by the tests stands in for it (tests/
test_sample_llama.py puts it where the alias looks); sample.py's own alias test is there. A name that is neither
an alias nor a path gets an error line; finetune.py fine-tunes the alias as a chat model (--task chat, the base
named by its alias and sha256) and refuses a Llama base for the other tasks, saying so."""

import hashlib
import json

import pytest
import torch

from common.errors import run_command
from minilm import from_pretrained
from minilm.chat.__main__ import main as chat_main
from minilm.gguf import load_gguf
from minilm.hf.export.__main__ import main as export_main
from minilm.parity import main as parity_main
from minilm.trace.__main__ import main as trace_main
from minilm.training.checkpoint import save_checkpoint
from minilm.viz.__main__ import main as viz_main
from test_sample_llama import cache_as_smollm2, gguf_file, tiny_llama  # noqa: F401 (gguf_file: a fixture)
from tokenizer import CharTokenizer

import finetune

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def smollm2(gguf_file, tmp_path, monkeypatch):
    cache_as_smollm2(gguf_file, tmp_path / "cache", monkeypatch)
    return gguf_file


def test_export_writes_the_alias_model_as_a_hugging_face_folder(smollm2, tmp_path, capsys):
    assert run_command(export_main, ["smollm2", str(tmp_path / "hf")]) == 0
    ids = torch.tensor([[72, 101, 108, 108, 111]])  # (1, T)
    with torch.no_grad():
        assert torch.equal(from_pretrained(tmp_path / "hf")(ids)[0], load_gguf(smollm2)(ids)[0])


def test_parity_compares_the_alias_model_with_transformers(smollm2, capsys):
    assert run_command(parity_main, ["smollm2", "--tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "(llama, GGUF)" in out and out.rstrip().splitlines()[-1].startswith("PASS")


def test_the_chat_talks_to_the_alias_model(smollm2, capsys):
    assert run_command(chat_main, ["--model", "smollm2", "--prompt", "hi", "--max_new_tokens", "3"]) == 0


def test_the_trace_reads_the_alias_model(smollm2, capsys):
    assert run_command(trace_main, ["smollm2", "--text", "Hello"]) == 0
    assert "Llama (pre-norm RMSNorm" in capsys.readouterr().out


def test_the_attention_page_reads_the_alias_model(smollm2, tmp_path, capsys):
    page = tmp_path / "attention.html"
    assert run_command(viz_main, ["attention", "--ckpt", "smollm2", "--text", "Hello", "-o", str(page)]) == 0
    assert page.is_file() and "Llama" in capsys.readouterr().out


@pytest.mark.parametrize("command, argv", [
    (export_main, ["smollm3", "{tmp}/out"]), (parity_main, ["smollm3"]), (chat_main, ["--model", "smollm3"]),
    (trace_main, ["smollm3"]), (viz_main, ["attention", "--ckpt", "smollm3", "--text", "hi", "-o", "{tmp}/a.html"]),
    (finetune.main, ["--task", "classify", "--base", "smollm3", "--out_dir", "{tmp}/ft"]),
], ids=["export", "parity", "chat", "trace", "viz", "finetune"])
def test_a_name_that_is_neither_an_alias_nor_a_path_is_an_error_line(command, argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_command(command, [arg.format(tmp=tmp_path) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "smollm3" in err and "Traceback" not in err


def test_finetune_refuses_the_alias_smollm2_as_a_classifier_base_naming_task_chat(smollm2, tmp_path, capsys):
    argv = ["--task", "classify", "--base", "smollm2", "--out_dir", str(tmp_path / "ft")]
    assert run_command(finetune.main, argv) == 2
    err = capsys.readouterr().err
    assert "--base smollm2 is a Llama" in err and "--task classify takes a GPT-2 or BERT base only" in err
    assert "--task chat" in err and not (tmp_path / "ft").exists()


def test_finetune_task_chat_takes_the_alias_smollm2_and_points_at_it_by_name(smollm2, tmp_path, capsys):
    data = tmp_path / "chats.jsonl"
    data.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                        {"role": "assistant", "content": f"a{i}"}]})
                              for i in range(10)))
    argv = ["--task", "chat", "--base", "smollm2", "--data", str(data), "--method", "lora", "--max_iters", "1",
            "--batch_size", "2", "--eval_iters", "1", "--warmup_iters", "0", "--out_dir", str(tmp_path / "ft"),
            "--val_fraction", "0.2", "--device", "cpu", "--progress", "false"]
    assert run_command(finetune.main, argv) == 0
    config = json.loads((tmp_path / "ft" / "best" / "config.json").read_text())
    assert config["base"] == {"alias": "smollm2", "sha256": hashlib.sha256(smollm2.read_bytes()).hexdigest()}
    assert isinstance(finetune.predict(tmp_path / "ft", ["q1"], max_new_tokens=3)[0], str)


def test_finetune_refuses_a_llama_checkpoint_as_a_base_saying_why(tmp_path, capsys):
    tokenizer = CharTokenizer.train("abcdefgh \n")
    model = tiny_llama(tokenizer.vocab_size)
    save_checkpoint(tmp_path / "best", model, {"model_class": "Llama", "model": model.config.to_dict()},
                    write_extra=lambda folder: tokenizer.save(folder / "tokenizer"))
    argv = ["--task", "lm", "--base", str(tmp_path / "best"), "--out_dir", str(tmp_path / "ft")]
    assert run_command(finetune.main, argv) == 2
    assert "is a Llama, and finetune.py --task lm takes a GPT-2 or BERT base only" in capsys.readouterr().err
