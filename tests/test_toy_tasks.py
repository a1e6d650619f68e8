"""The toy tasks of minilm/training/toy_tasks.py: their batches, the held-out split, and that a tiny GPT
and a tiny BERT learn them through train_gpt.py / train_bert.py in a few seconds."""

import json

import pytest
import torch

import train_bert
import train_gpt
from minilm.model.losses import IGNORE_INDEX
from minilm.training.toy_tasks import MASK_ID, PalindromeTask, SortTask, is_held_out
from tokenizer import load_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

COMMON_FLAGS = ["--batch_size", "32", "--warmup_iters", "20", "--eval_iters", "2", "--toy_val_size", "300",
                "--device", "cpu", "--progress", "false"]


def run(script, tmp_path, *flags):
    """main() of a script on its toy preset; returns the metrics and the out_dir."""
    out_dir = tmp_path / script.__name__
    metrics = script.main(["--config", "toy", "--out_dir", str(out_dir), *COMMON_FLAGS, *flags])
    return metrics, out_dir


def test_sort_batch_is_prompt_separator_answer_with_loss_only_on_the_answer():
    task = SortTask(length=5)
    batch = task.get_batch("train", 64, torch.Generator().manual_seed(0))
    inputs, targets = batch["input_ids"], batch["targets"]  # (B, 2L) each
    assert inputs.shape == targets.shape == (64, 10)
    assert (inputs[:, 5] == task.separator_id).all()
    assert (targets[:, :5] == IGNORE_INDEX).all()
    answer = targets[:, 5:]  # (B, L): the sorted prompt, the next token after each answer position
    assert torch.equal(answer, inputs[:, :5].sort(dim=1).values)
    assert torch.equal(inputs[:, 6:], answer[:, :-1])  # teacher forcing: the answer so far is the input


def test_palindrome_masks_one_digit_of_some_mirror_pairs_and_labels_only_those():
    task = PalindromeTask(length=8)
    batch = task.get_batch("train", 64, torch.Generator().manual_seed(0))
    ids, labels = batch["input_ids"][:, 1:-1], batch["mlm_labels"][:, 1:-1]  # (B, 8): without [CLS], [SEP]
    masked = ids == MASK_ID
    assert torch.equal(masked, labels != IGNORE_INDEX)
    assert not (masked & masked.flip(1)).any()  # never both digits of a pair: the mirror gives it away
    assert (masked.sum(1) == task.masked_pairs).all()
    digits = torch.where(masked, labels, ids)
    assert torch.equal(digits, digits.flip(1))


@pytest.mark.parametrize("task", [SortTask(length=3), PalindromeTask(length=6)], ids=["sort", "palindrome"])
def test_training_never_draws_a_held_out_string(task):
    def strings(batch):  # the digits the held-out hash is of: the prompt, or the first half
        ids = batch["input_ids"]
        if isinstance(task, SortTask):
            return ids[:, :task.length]
        return torch.where(ids == MASK_ID, batch["mlm_labels"], ids)[:, 1:1 + task.half] - 5

    generator = torch.Generator().manual_seed(0)
    train = torch.cat([strings(task.get_batch("train", 256, generator)) for _ in range(200)])  # 51,200 strings
    val = strings(task.held_out_examples())
    assert not is_held_out(train).any() and is_held_out(val).all()
    seen = {tuple(s) for s in train.tolist()}
    every_string = torch.cartesian_prod(*[torch.arange(10)] * 3)  # (1000, 3)
    assert len(seen) == 1000 - is_held_out(every_string).sum()  # every three-digit string but the held out
    assert not seen & {tuple(s) for s in val.tolist()}


def test_the_held_out_share_is_about_a_tenth():
    digits = torch.randint(10, (20000, 6), generator=torch.Generator().manual_seed(0))
    assert 0.09 < is_held_out(digits).float().mean().item() < 0.11


def test_a_tiny_gpt_learns_to_sort_held_out_strings(tmp_path):
    metrics, out_dir = run(train_gpt, tmp_path, "--toy_length", "4", "--block_size", "8", "--n_embd", "32",
                           "--max_iters", "300", "--eval_interval", "300", "--lr", "1e-2")
    assert metrics["val_exact"] > 0.9
    assert load_tokenizer(out_dir / "best" / "tokenizer").decode([3, 1, 10]) == "31="
    assert json.loads((out_dir / "best" / "config.json").read_text())["toy"]["toy_task"] == "sort"


def test_a_tiny_bert_recovers_masked_palindrome_digits(tmp_path):
    metrics, out_dir = run(train_bert, tmp_path, "--toy_length", "6", "--block_size", "8", "--n_inner", "128",
                           "--max_iters", "100", "--eval_interval", "100")
    assert metrics["val_masked_acc"] > 0.9
    assert load_tokenizer(out_dir / "best" / "tokenizer").mask_id == MASK_ID


def test_a_resumed_toy_run_draws_the_same_batches(tmp_path):
    flags = ["--toy_length", "3", "--block_size", "6", "--n_layer", "1", "--n_embd", "16", "--eval_interval", "10",
             "--log_interval", "10", "--toy_val_size", "20"]
    whole, _ = run(train_gpt, tmp_path / "whole", *flags, "--max_iters", "20")
    run(train_gpt, tmp_path / "halves", *flags, "--max_iters", "10")
    resumed, _ = run(train_gpt, tmp_path / "halves", *flags, "--max_iters", "20", "--resume")
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], abs=1e-6)


def test_a_toy_task_of_the_other_model_is_refused(tmp_path):
    with pytest.raises(Exception, match="not a GPT toy task"):
        run(train_gpt, tmp_path, "--toy_task", "palindrome", "--max_iters", "1")
