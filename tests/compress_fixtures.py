"""A tiny fine-tuned classifier for the compress tests, written by finetune.py itself (so the commands read
it through the real loaders, data split included), once per test module."""

import finetune
from finetune_fixtures import save_bert_base, sentiment_rows, write_csv


def finetuned_classifier(root, max_iters: int = 6):
    """A finetune.py classify run (method full) on the tiny BERT and a CSV of 40 reviews: its out_dir."""
    base = save_bert_base(root / "bert-base")
    data = write_csv(root / "reviews.csv", sentiment_rows(40))
    out_dir = root / "classifier"
    finetune.main(["--task", "classify", "--base", str(base), "--data", str(data), "--method", "full", "--lr", "1e-2",
                   "--max_iters", str(max_iters), "--batch_size", "8", "--warmup_iters", "1", "--eval_interval",
                   str(max_iters), "--eval_iters", "1", "--out_dir", str(out_dir), "--device", "cpu",
                   "--progress", "false", "--head_dropout", "0", "--max_length", "32", "--val_fraction", "0.25"])
    return out_dir
