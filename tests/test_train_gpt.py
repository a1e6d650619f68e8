"""train_gpt.py end to end on a tiny model and text: --data checks, the files a run writes, what it returns."""

import json
import math
import random

import pytest
import torch

import sample
import train_gpt
from data.prepare import prepare_lm_data
from minilm import GPT, GPTConfig
from minilm.training.checkpoint import load_checkpoint, load_model_weights
from minilm.training.lm_task import LanguageModelTask
from minilm.training.trainer import TrainConfig

TINY_FLAGS = ["--n_layer", "1", "--n_head", "2", "--n_embd", "32", "--block_size", "16", "--batch_size", "8",
              "--max_iters", "30", "--lr", "1e-2", "--warmup_iters", "5", "--eval_interval", "15",
              "--eval_iters", "4", "--log_interval", "10", "--device", "cpu", "--progress", "false",
              "--num_samples", "1", "--sample_tokens", "8"]


pytestmark = pytest.mark.usefixtures("one_thread")


def write_text(path, n_lines=400):
    """A small, learnable text: lines of words from a 12-word vocabulary (about 24k characters)."""
    words = "to be or not that is the question whether tis nobler in".split()
    rng = random.Random(0)
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(n_lines)) + "\n")
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny run of main(): (returned metrics, out_dir, text path)."""
    tmp = tmp_path_factory.mktemp("train_gpt")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINILM_CACHE", str(tmp / "cache"))
        text = write_text(tmp / "text.txt")
        metrics = train_gpt.main(["--data", str(text), "--out_dir", str(tmp / "out"), *TINY_FLAGS])
    return metrics, tmp / "out", text


def run_main(tmp_path, *flags):
    return train_gpt.main(["--out_dir", str(tmp_path / "out"), *TINY_FLAGS, *flags])


def test_missing_data_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"--data .*nope\.txt: no such file"):
        run_main(tmp_path, "--data", str(tmp_path / "nope.txt"))


def test_empty_data_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match=r"--data .*empty\.txt: the file is empty"):
        run_main(tmp_path, "--data", str(tmp_path / "empty.txt"))


def test_too_short_data_file_names_the_sizes(tmp_path, monkeypatch):
    monkeypatch.setenv("MINILM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "short.txt").write_text("to be or not to be\n")
    # block_size 16 and val_fraction 0.1: each split needs a block + 1, so 2 * 17 / 0.1 = 340 characters
    with pytest.raises(ValueError, match=r"only 19 characters, and training needs at least 340"):
        run_main(tmp_path, "--data", str(tmp_path / "short.txt"))


def test_data_is_prepared_under_minilm_cache(finished_run):
    cache = finished_run[1].parent / "cache"
    assert list(cache.glob("tokens/*/train.bin")) and list(cache.glob("tokenizers/char-*/tokenizer.json"))


def test_run_writes_checkpoints_metrics_and_plot(finished_run):
    out = finished_run[1]
    for name in ("model.safetensors", "config.json", "train_state.pt", "tokenizer/tokenizer.json"):
        assert (out / "ckpt" / name).is_file(), name
    for name in ("model.safetensors", "config.json", "tokenizer/tokenizer.json"):
        assert (out / "best" / name).is_file(), name
    assert not (out / "best" / "train_state.pt").exists()
    assert (out / "metrics.png").stat().st_size > 0


def test_metrics_log_has_train_rows_and_evaluations(finished_run):
    rows = [json.loads(line) for line in (finished_run[1] / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [10, 20, 30]
    assert [r["step"] for r in rows if "val_loss" in r] == [15, 30]


def test_run_returns_the_last_evaluation(finished_run):
    metrics, out, _ = finished_run
    last_eval = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    del last_eval["step"]
    assert metrics == last_eval and metrics.keys() >= {"val_loss", "train_loss", "val_ppl"}
    assert metrics["val_ppl"] == pytest.approx(math.exp(metrics["val_loss"]))


def test_run_learns_below_the_uniform_loss(finished_run):
    metrics, out, _ = finished_run
    vocab_size = json.loads((out / "ckpt" / "config.json").read_text())["model"]["vocab_size"]
    assert metrics["val_loss"] < math.log(vocab_size) - 0.5


def test_checkpoint_config_names_the_model_and_its_sizes(finished_run):
    config = json.loads((finished_run[1] / "ckpt" / "config.json").read_text())
    assert config["model_class"] == "GPT" and config["step"] == 30
    assert (config["model"]["n_layer"], config["model"]["n_embd"], config["model"]["block_size"]) == (1, 32, 16)
    assert config["train"]["max_iters"] == 30 and config["data"]["tokenizer"] == "char"


def test_best_checkpoint_reloads_into_a_gpt_that_scores_the_best_val_loss(finished_run, monkeypatch):
    metrics, out, text = finished_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best_val_loss = min(row["val_loss"] for row in rows if "val_loss" in row)
    state_dict, config, _ = load_checkpoint(out / "best", with_train_state=False)
    model = GPT(GPTConfig.from_dict(config["model"]))
    load_model_weights(model, state_dict)
    monkeypatch.setenv("MINILM_CACHE", str(out.parent / "cache"))
    _, tokens = prepare_lm_data(str(text), "char", 4096, val_fraction=0.1, block_size=16)
    task = LanguageModelTask(tokens, block_size=16)
    model.eval()
    with torch.no_grad():
        val_loss = task.evaluate(model, TrainConfig(batch_size=8, eval_iters=4), "cpu")["val_loss"]
    assert val_loss == pytest.approx(best_val_loss, rel=1e-6)


def test_sample_py_generates_from_the_best_checkpoint(finished_run, capsys):
    texts = sample.main(["--ckpt", str(finished_run[1] / "best"), "--prompt", "to be", "--num_samples", "2",
                         "--max_new_tokens", "12", "--seed", "0", "--device", "cpu"])
    assert len(texts) == 2 and all(t.startswith("to be") and len(t) == 17 for t in texts)
    assert texts[0] in capsys.readouterr().out
