"""finetune.py's command line: the shakespeare-lm recipe explains a missing base; --task lm continues a GPT."""

import pytest
import torch

import finetune
from common.errors import MissingFileError
from finetune_fixtures import save_gpt_base


def test_shakespeare_recipe_without_a_base_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no out/gpt-small here
    with pytest.raises(MissingFileError, match=r"python train_gpt.py --config small"):
        finetune.main(["--recipe", "shakespeare-lm", "--device", "cpu"])


def test_continuing_a_gpt_on_a_text_lowers_its_validation_perplexity(tmp_path):
    torch.set_num_threads(1)
    text = "the film was good. the plot was bad, very dull.\n" * 60
    base = save_gpt_base(tmp_path / "base", text)
    (tmp_path / "text.txt").write_text(text)
    result = finetune.main(["--task", "lm", "--base", str(base), "--data", str(tmp_path / "text.txt"),
                            "--method", "full", "--lr", "1e-2", "--max_iters", "20", "--batch_size", "8",
                            "--max_length", "32", "--warmup_iters", "2", "--eval_interval", "20", "--eval_iters", "2",
                            "--out_dir", str(tmp_path / "run"), "--device", "cpu", "--progress", "false"])
    assert result["after"]["val_ppl"] < 0.8 * result["before"]["val_ppl"]


def test_help_of_a_recipe_shows_the_values_that_recipe_runs_with(capsys):
    with pytest.raises(SystemExit) as exit_info:
        finetune.main(["--recipe", "pos-minilm", "--method", "full", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    assert exit_info.value.code == 0
    assert "--recipe {" in shown and "--config" not in shown
    assert "peak learning rate (default 0.0003)" in shown  # the recipe's lr for full fine-tuning, not 0.001
    assert "(default out/pos-minilm)" in shown and "(default val_acc)" in shown
