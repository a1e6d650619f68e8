"""sample.py: load a train_gpt.py checkpoint folder and generate from it."""

import json

import pytest
import torch

import sample
from common.errors import run_command
from finetune_fixtures import tiny_bert
from minilm import GPT, GPTConfig, save_pretrained
from minilm.training.checkpoint import save_checkpoint
from tokenizer import CharTokenizer


pytestmark = pytest.mark.usefixtures("one_thread")


TEXT = "ROMEO: But soft, what light through yonder window breaks?\nJULIET: Ay me!\n"


def tiny_gpt(tokenizer, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32))


@pytest.fixture
def checkpoint(tmp_path):
    """A folder laid out as train_gpt.py writes best/: (folder, the model saved in it)."""
    tokenizer = CharTokenizer.train(TEXT)
    model = tiny_gpt(tokenizer)
    config = {"model_class": "GPT", "model": model.config.to_dict(), "step": 10}
    save_checkpoint(tmp_path / "best", model, config, write_extra=lambda folder: tokenizer.save(folder / "tokenizer"))
    return tmp_path / "best", model


def run(folder, *flags):
    return sample.main(["--ckpt", str(folder), "--device", "cpu", *flags])


def test_prints_each_sample_starting_with_the_prompt(checkpoint, capsys):
    samples = run(checkpoint[0], "--prompt", "ROMEO:", "--num_samples", "3", "--max_new_tokens", "20", "--seed", "1")
    out = capsys.readouterr().out
    assert len(samples) == 3 and [f"--- sample {i} ---" in out for i in (1, 2, 3)] == [True] * 3
    for text in samples:
        assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 20  # one character per token
        assert text in out


def test_greedy_sample_is_the_saved_models_argmax_continuation(checkpoint):
    folder, model = checkpoint
    text = run(folder, "--prompt", "JULIET:", "--temperature", "0", "--num_samples", "1", "--max_new_tokens", "30")[0]
    tokenizer = CharTokenizer.train(TEXT)
    input_ids = torch.tensor([tokenizer.encode("JULIET:")])  # (1, T)
    model.eval()
    with torch.no_grad():
        for _ in range(30):  # no KV cache, the context cropped to block_size by hand
            logits, _ = model(input_ids[:, -16:])
            input_ids = torch.cat([input_ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert text == tokenizer.decode(input_ids[0].tolist())


def test_same_seed_gives_the_same_samples_and_another_seed_others(checkpoint):
    flags = ("--prompt", "R", "--num_samples", "2", "--max_new_tokens", "40", "--temperature", "1.5")
    first, again = run(checkpoint[0], *flags, "--seed", "3"), run(checkpoint[0], *flags, "--seed", "3")
    other = run(checkpoint[0], *flags, "--seed", "4")
    assert first == again and first != other


def test_top_k_and_top_p_flags_reach_the_sampler(checkpoint):
    # top_k 1 keeps only the likeliest token: the same text as greedy, whatever the temperature and seed.
    greedy = run(checkpoint[0], "--temperature", "0", "--num_samples", "1", "--max_new_tokens", "25")
    for flags in (("--top_k", "1"), ("--top_p", "1e-6")):
        sampled = run(checkpoint[0], "--temperature", "2", "--num_samples", "1", "--max_new_tokens", "25",
                      "--seed", "5", *flags)
        assert sampled == greedy, flags


def exit_message(capsys, folder, *flags):
    """What sample.py prints on stderr for a mistake; it must exit with status 2 and no traceback."""
    status = run_command(sample.main, ["--ckpt", str(folder), "--device", "cpu", *flags])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    return err


def test_folder_of_another_model_class_is_a_clear_error(checkpoint, capsys):
    folder = checkpoint[0]
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_class": "BertForPreTraining"}))
    err = exit_message(capsys, folder)
    assert "config.json is not a train_gpt.py checkpoint" in err and "'BertForPreTraining'" in err


def test_a_hugging_face_folder_of_an_encoder_is_a_clear_error(tmp_path, capsys):
    save_pretrained(tiny_bert(), tmp_path / "bert")  # loads, but a BERT does not continue text
    err = exit_message(capsys, tmp_path / "bert")
    assert "holds a Bert, which does not generate text" in err and "GPT-2 or Llama folder" in err


def test_missing_folder_is_a_clear_error(tmp_path, capsys):
    err = exit_message(capsys, tmp_path / "nowhere")
    assert f"no checkpoint at {tmp_path / 'nowhere'}" in err


def test_checkpoint_without_tokenizer_names_the_missing_file(checkpoint, capsys):
    for path in (checkpoint[0] / "tokenizer").iterdir():
        path.unlink()
    err = exit_message(capsys, checkpoint[0])
    assert "tokenizer.json does not exist" in err


def test_prompt_outside_the_vocabulary_names_the_character(checkpoint, capsys):
    err = exit_message(capsys, checkpoint[0], "--prompt", "Zounds")
    assert "'Z'" in err and "not in the vocabulary" in err


def test_bad_counts_are_clear_errors(checkpoint, capsys):
    assert "--num_samples must be at least 1" in exit_message(capsys, checkpoint[0], "--num_samples", "0")
    assert "--max_new_tokens must be >= 0" in exit_message(capsys, checkpoint[0], "--max_new_tokens", "-1")
