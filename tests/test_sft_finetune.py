"""finetune.py --task chat (instruction tuning) end to end, on tiny Llamas: a GGUF chat model as the tests of
sample.py write it (byte-level ChatML tokenizer, SmolLM2's layout), and train_gpt.py-style Llama checkpoints.
The run lowers the answers' validation loss, LoRA reaches the MLP, the checkpoint points at its base by sha256,
the merged model talks in python -m minilm.chat and exports to a folder transformers answers the same from;
a base without a chat template, bad chat data and a changed base are refused with one error line."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

import finetune
from common.errors import run_command
from minilm.chat import load_decoder
from minilm.chat.__main__ import main as chat_main
from minilm.hf.export import main as export_main
from minilm.training.checkpoint import save_checkpoint
from test_chat import byte_tokenizer
from test_sample_llama import BYTES_AND_CHATML, gguf_file, tiny_llama  # noqa: F401 (gguf_file: a fixture)
from tokenizer import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

ALL_TARGETS = "q_proj,k_proj,v_proj,out_proj,gate_proj,up_proj,down_proj"


def write_chats(path, n: int = 40):
    """n short conversations in one pattern, so held-out ones can be learned: "n 7?" -> "It is 7."."""
    lines = [json.dumps({"messages": [{"role": "user", "content": f"n {i}?"},
                                      {"role": "assistant", "content": f"It is {i}."}]}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def chat_args(base, data, out_dir, *extra, iters: int = 40):
    return ["--task", "chat", "--base", str(base), "--data", str(data), "--out_dir", str(out_dir),
            "--max_iters", str(iters), "--batch_size", "8", "--warmup_iters", "2", "--eval_interval", str(iters),
            "--eval_iters", "2", "--max_length", "64", "--val_fraction", "0.2", "--device", "cpu",
            "--progress", "false", *extra]


@pytest.fixture(scope="module")
def lora_run(gguf_file, tmp_path_factory):
    """LoRA on every Linear of the tiny GGUF chat model, merged too."""
    folder = tmp_path_factory.mktemp("chat_lora")
    data = write_chats(folder / "chats.jsonl")
    result = finetune.main(chat_args(gguf_file, data, folder / "run", "--method", "lora", "--lora_targets",
                                     ALL_TARGETS, "--lr", "1e-2", "--merge"))
    return folder, result


def test_the_chat_task_lowers_the_validation_loss_of_the_answers(lora_run):
    _, result = lora_run
    assert result["after"]["val_loss"] < 0.7 * result["before"]["val_loss"]


def test_lora_on_a_llama_saves_only_its_tensors_on_attention_and_mlp(lora_run):
    folder, _ = lora_run
    saved = load_file(folder / "run" / "best" / "model.safetensors")
    assert all(".lora_A" in name or ".lora_B" in name for name in saved)
    assert {name.split(".")[3] for name in saved} == set(ALL_TARGETS.split(","))


def test_the_checkpoint_points_at_the_gguf_base_with_its_sha256(lora_run, gguf_file):
    import hashlib
    folder, _ = lora_run
    config = json.loads((folder / "run" / "best" / "config.json").read_text())
    assert config["task"] == "chat" and config["base"] == {
        "path": str(gguf_file.resolve()), "sha256": hashlib.sha256(gguf_file.read_bytes()).hexdigest()}


def test_the_merged_model_answers_in_minilm_chat_as_the_unmerged_one_does(lora_run, capsys):
    folder, _ = lora_run
    unmerged = finetune.predict(folder / "run", ["n 3?"], max_new_tokens=12)[0]
    capsys.readouterr()
    argv = ["--model", str(folder / "run" / "merged"), "--prompt", "n 3?", "--max_new_tokens", "12"]
    assert run_command(chat_main, argv) == 0
    assert capsys.readouterr().out.strip() == unmerged.strip() != ""


def test_minilm_chat_takes_the_run_folder_as_its_merged_model(lora_run):
    folder, _ = lora_run
    assert load_decoder(folder / "run").source == str(folder / "run")
    with torch.no_grad():
        ids = torch.tensor([[72, 101, 108]])
        torch.testing.assert_close(load_decoder(folder / "run").model(ids)[0],
                                   load_decoder(folder / "run" / "merged").model(ids)[0])


def test_the_service_serves_the_run_folder_as_a_chat_model(lora_run):
    from minilm.serve.__main__ import load_model
    folder, _ = lora_run
    served = load_model("tuned", str(folder / "run"))
    assert "chat" in served.endpoints


def test_minilm_chat_refuses_the_unmerged_checkpoint_naming_the_merged_one(lora_run, capsys):
    folder, _ = lora_run
    assert run_command(chat_main, ["--model", str(folder / "run" / "best"), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "only the tensors" in err and str(folder / "run" / "merged") in err


def test_a_loader_without_a_decoder_reader_names_the_merged_model(lora_run):
    from common.errors import CheckpointError
    from minilm.finetune.checkpoints import load_finetuned
    folder, _ = lora_run
    with pytest.raises(CheckpointError, match="merged"):
        load_finetuned(folder / "run")  # e.g. the service's loader of classifiers, which reads no .gguf


def test_the_merged_lora_exports_to_a_folder_transformers_answers_the_same_from(lora_run, tmp_path, capsys):
    import transformers
    folder, _ = lora_run
    assert run_command(export_main, [str(folder / "run" / "merged"), str(tmp_path / "hf")]) == 0
    chat = load_decoder(folder / "run" / "merged")
    prompt = torch.tensor([chat.tokenizer.apply_chat_template([{"role": "user", "content": "n 5?"}])])  # (1, T)
    ours = chat.model.generate(prompt, 10, temperature=0)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    theirs.generation_config.eos_token_id = None  # both write all 10 tokens
    with torch.no_grad():
        reference = theirs.generate(prompt, max_new_tokens=10, do_sample=False, attention_mask=torch.ones_like(prompt))
    assert torch.equal(ours, reference)


def test_full_fine_tuning_of_the_chat_model_resumes_where_it_stopped(gguf_file, tmp_path):
    data = write_chats(tmp_path / "chats.jsonl", 20)
    common = ("--method", "full", "--lr", "1e-3", "--eval_interval", "3")
    finetune.main(chat_args(gguf_file, data, tmp_path / "straight", *common, iters=6))
    finetune.main(chat_args(gguf_file, data, tmp_path / "resumed", *common, iters=3))
    finetune.main(chat_args(gguf_file, data, tmp_path / "resumed", *common, "--resume", iters=6))
    assert load_decoder(tmp_path / "resumed").model.num_parameters() > 0  # full: best/ is a whole model
    straight = load_file(tmp_path / "straight" / "ckpt" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "ckpt" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_a_fresh_run_into_a_used_out_dir_is_refused(lora_run, gguf_file, capsys):
    folder, _ = lora_run
    assert run_command(finetune.main, chat_args(gguf_file, folder / "chats.jsonl", folder / "run")) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("method, options", [
    ("adalora", ["--lora_targets", "q_proj,v_proj,down_proj"]), ("freeze", ["--train_layers", "1"]),
    ("adapter", ["--adapter_size", "8"]), ("prefix", ["--prefix_length", "4", "--prefix_hidden", "16"]),
])
def test_each_peft_method_trains_a_llama_and_answers_through_predict(method, options, gguf_file, tmp_path):
    data = write_chats(tmp_path / "chats.jsonl", 20)
    result = finetune.main(chat_args(gguf_file, data, tmp_path / "run", "--method", method, "--lr", "1e-2", *options,
                                     iters=15))
    assert result["after"]["val_loss"] < result["before"]["val_loss"]
    assert isinstance(finetune.predict(tmp_path / "run", ["n 1?"], max_new_tokens=4)[0], str)


def test_minilm_chat_refuses_a_merged_adapter_run_naming_predict(gguf_file, tmp_path, capsys):
    data = write_chats(tmp_path / "chats.jsonl", 10)
    finetune.main(chat_args(gguf_file, data, tmp_path / "run", "--method", "adapter", "--merge", iters=2))
    assert run_command(chat_main, ["--model", str(tmp_path / "run"), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert "--method adapter" in err and "finetune.py predict" in err


def test_a_hugging_face_llama_folder_with_a_template_is_a_chat_base(tmp_path):
    from minilm import save_pretrained
    save_pretrained(tiny_llama(BYTES_AND_CHATML), tmp_path / "hf")
    byte_tokenizer().save(tmp_path / "hf" / "tokenizer")
    data = write_chats(tmp_path / "chats.jsonl", 10)
    result = finetune.main(chat_args(tmp_path / "hf", data, tmp_path / "run", "--method", "lora", iters=2))
    assert set(result) == {"before", "after", "best"}
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert config["base"]["path"] == str((tmp_path / "hf").resolve())


# ------------------------------------------------------------------------------------------- refused

def save_llama_checkpoint(folder, tokenizer):
    """A Llama as train_gpt.py --architecture llama saves it: model, config, tokenizer/."""
    model = tiny_llama(tokenizer.vocab_size)
    save_checkpoint(folder, model, {"model_class": "Llama", "model": model.config.to_dict()},
                    write_extra=lambda tmp: tokenizer.save(tmp / "tokenizer"))
    return folder


def test_a_base_without_a_chat_template_is_refused_naming_chat_template(tmp_path, capsys):
    base = save_llama_checkpoint(tmp_path / "base", byte_tokenizer(template=None))
    data = write_chats(tmp_path / "chats.jsonl", 10)
    assert run_command(finetune.main, chat_args(base, data, tmp_path / "run", iters=2)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "no chat template" in err and "--chat_template chatml" in err
    assert not (tmp_path / "run").exists()


def test_a_base_without_a_template_trains_with_chat_template_chatml_and_keeps_it(tmp_path):
    base = save_llama_checkpoint(tmp_path / "base", byte_tokenizer(template=None))
    data = write_chats(tmp_path / "chats.jsonl", 10)
    finetune.main(chat_args(base, data, tmp_path / "run", "--chat_template", "chatml", "--method", "full",
                            "--merge", iters=2))
    chat = load_decoder(tmp_path / "run" / "merged")
    text = chat.tokenizer.decode(chat.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}]))
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_chatml_on_a_tokenizer_without_its_tokens_is_refused_naming_them(tmp_path, capsys):
    base = save_llama_checkpoint(tmp_path / "base", CharTokenizer.train("n0123456789? zeroninthwsvfuxg"))
    data = write_chats(tmp_path / "chats.jsonl", 10)
    argv = chat_args(base, data, tmp_path / "run", "--chat_template", "chatml", iters=2)
    assert run_command(finetune.main, argv) == 2
    err = capsys.readouterr().err
    assert "<|im_start|> and <|im_end|>" in err and "does not add tokens" in err


def test_a_gpt2_lora_target_on_a_llama_is_an_error_line(gguf_file, tmp_path, capsys):
    data = write_chats(tmp_path / "chats.jsonl", 10)
    argv = chat_args(gguf_file, data, tmp_path / "run", "--method", "lora", "--lora_targets", "q_proj,fc_in")
    assert run_command(finetune.main, argv) == 2
    assert "no fc_in; choose from" in capsys.readouterr().err


@pytest.mark.parametrize("content, words", [
    ('{"messages": [{"role": "user", "content": "hi"}]}', "assistant"),
    ('{"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "yo"}]}', "robot"),
    ('{"messages": "hi"}', "messages"),
    ('not json', "line 1"),
    ('{"messages": []}', "line 1"),
], ids=["no-answer", "unknown-role", "not-a-list", "not-json", "empty"])
def test_bad_chat_data_is_an_error_line_and_nothing_is_written(content, words, gguf_file, tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text(content + "\n")
    assert run_command(finetune.main, chat_args(gguf_file, tmp_path / "bad.jsonl", tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and words in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_changed_base_is_caught_when_the_checkpoint_is_loaded(gguf_file, tmp_path, capsys):
    base = tmp_path / "base.gguf"
    shutil.copy(gguf_file, base)
    finetune.main(chat_args(base, write_chats(tmp_path / "chats.jsonl", 10), tmp_path / "run", "--method", "lora",
                            iters=2))
    with open(base, "r+b") as f:  # one byte of the last tensor's data
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    argv = ["predict", "--ckpt", str(tmp_path / "run"), "n 1?"]
    assert run_command(finetune.main, argv) == 2
    assert "has changed since fine-tuning" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- the recipe

def test_the_assistant_recipe_runs_lora_on_every_linear_of_the_alias_model(gguf_file, tmp_path, monkeypatch):
    from test_sample_llama import cache_as_smollm2
    cache_as_smollm2(gguf_file, tmp_path / "cache", monkeypatch)  # the tiny GGUF stands in for SmolLM2
    data = write_chats(tmp_path / "chats.jsonl", 40)
    finetune.main(["--recipe", "assistant-smollm2", "--data", str(data), "--max_iters", "2", "--eval_interval", "2",
                   "--out_dir", str(tmp_path / "run"), "--device", "cpu", "--progress", "false", "--merge"])
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert config["base"]["alias"] == "smollm2" and config["peft"]["method"] == "lora"
    saved = load_file(tmp_path / "run" / "best" / "model.safetensors")
    assert {name.split(".")[3] for name in saved} == set(ALL_TARGETS.split(","))
    assert load_decoder(tmp_path / "run").source == str(tmp_path / "run")  # merged: minilm.chat reads it


@pytest.mark.slow
def test_the_real_smollm2_learns_chatterbot_answers_and_chats_merged(tmp_path, capsys):
    """A few LoRA steps of the recipe on the real SmolLM2 (fetched on first use): the answers' loss falls, and the
    merged model answers in python -m minilm.chat as finetune.py predict answers from the trained tensors."""
    result = finetune.main(["--recipe", "assistant-smollm2", "--max_examples", "40", "--val_fraction", "0.1",
                            "--max_iters", "3", "--warmup_iters", "0", "--batch_size", "4", "--eval_interval", "3",
                            "--out_dir", str(tmp_path / "run"), "--progress", "false", "--merge"])
    assert result["after"]["val_loss"] < result["before"]["val_loss"]
    answer = finetune.predict(tmp_path / "run", ["What is AI?"], max_new_tokens=16)[0]
    capsys.readouterr()
    argv = ["--model", str(tmp_path / "run"), "--prompt", "What is AI?", "--max_new_tokens", "16"]
    assert run_command(chat_main, argv) == 0
    assert capsys.readouterr().out.strip() == answer.strip() != ""
