"""Fine-tuning runs on tiny models: early stopping keeps the best checkpoint, an interrupted run resumes
exactly, and a saved adapter-only checkpoint predicts (labels included) from its base pointer."""

import json
import signal
import shutil

import pytest
import torch
from safetensors.torch import load_file

import finetune
from data.finetune_data import LabelMap, TextExample
from minilm.finetune.encode import encode_text_examples
from common.errors import CheckpointError
from finetune_fixtures import save_bert_base, sentiment_rows, tiny_bert, tiny_wordpiece, write_csv
from minilm.finetune.checkpoints import FinetuneTrainer, trained_state_dict
from minilm.finetune.tasks import ClassificationTask, TaggingTask
from minilm.finetune.heads import HEAD_NAMES, SequenceClassifier, TokenTagger
from minilm.model.losses import IGNORE_INDEX
from minilm.peft import PeftConfig, apply_peft
from minilm.training.trainer import TrainConfig, seed_everything, split_batch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from threads
    yield
    torch.set_num_threads(threads)


def encoded_sentiment(n_train=48, n_val=12):
    rows = sentiment_rows(n_train + n_val)
    examples = [TextExample(text, label) for text, label in rows]
    label_map = LabelMap.from_labels(e.label for e in examples)
    encode = lambda items, split: encode_text_examples(items, tiny_wordpiece(), "bert", label_map, 16, split)
    return {"train": encode(examples[:n_train], "train"), "val": encode(examples[n_train:], "val")}, label_map


class RecordingTask(ClassificationTask):
    """Records each training loss; interrupt_at=k presses Ctrl-C (SIGINT) in the k-th training loss;
    scripted_metric replaces val_acc with the given values, one per evaluation, and snapshots the
    trained tensors at each evaluation."""

    def __init__(self, examples, labels, interrupt_at=None, scripted_metric=None):
        super().__init__(examples, pad_id=0, labels=labels)
        self.interrupt_at, self.scripted_metric = interrupt_at, scripted_metric
        self.train_losses, self.snapshots = [], []

    def loss(self, model, batch):
        loss = super().loss(model, batch)
        if model.training:
            if len(self.train_losses) + 1 == self.interrupt_at:
                signal.raise_signal(signal.SIGINT)
            self.train_losses.append(loss.item())
        return loss

    def evaluate(self, model, cfg, device):
        metrics = super().evaluate(model, cfg, device)
        if self.scripted_metric is not None:
            metrics["val_acc"] = self.scripted_metric[len(self.snapshots)]
            self.snapshots.append({k: v.clone() for k, v in trained_state_dict(model).items()})
        return metrics


def lora_trainer(out_dir, task, **train_overrides):
    seed_everything(0)
    model = SequenceClassifier(tiny_bert(dropout=0.1), num_labels=2)
    task.peft_controller = apply_peft(model, PeftConfig(method="lora", lora_r=4), HEAD_NAMES)
    cfg = dict(out_dir=str(out_dir), max_iters=8, batch_size=8, lr=1e-2, warmup_iters=2, eval_interval=3,
               eval_iters=1, log_interval=1, device="cpu", progress=False, seed=0, metric="val_acc",
               metric_goal="max")
    return FinetuneTrainer(model.train(), task, TrainConfig(**{**cfg, **train_overrides}),
                           {"model_class": "SequenceClassifier"})


def test_early_stopping_stops_after_patience_and_keeps_the_best_evaluation(tmp_path):
    examples, label_map = encoded_sentiment()
    task = RecordingTask(examples, label_map.labels, scripted_metric=[0.5, 0.9, 0.7, 0.8, 0.95])
    trainer = lora_trainer(tmp_path, task, max_iters=30, eval_interval=2, patience=2)
    trainer.run()
    assert trainer.step == 8  # evaluations at 2, 4 (best), 6, 8: two without improvement -> stop
    best = load_file(tmp_path / "best" / "model.safetensors")
    assert json.loads((tmp_path / "best" / "config.json").read_text())["step"] == 4
    assert best.keys() == task.snapshots[1].keys()
    for name, tensor in best.items():
        assert torch.equal(tensor, task.snapshots[1][name]), name


def test_interrupted_lora_run_resumes_with_the_uninterrupted_losses(tmp_path):
    examples, label_map = encoded_sentiment()
    straight = RecordingTask(examples, label_map.labels)
    lora_trainer(tmp_path / "straight", straight).run()

    first = RecordingTask(examples, label_map.labels, interrupt_at=5)  # inside step 5, after the eval at 3
    with pytest.raises(KeyboardInterrupt):
        lora_trainer(tmp_path / "resumed", first).run()
    second = RecordingTask(examples, label_map.labels)
    lora_trainer(tmp_path / "resumed", second, resume=True).run()
    assert first.train_losses + second.train_losses == straight.train_losses


@pytest.fixture(scope="module")
def adapter_run(tmp_path_factory):
    """finetune.py's command line on a tiny BERT base, method adapter, labels that sort oddly."""
    folder = tmp_path_factory.mktemp("adapter_run")
    base = save_bert_base(folder / "base")
    rows = [(text, {"pos": "zz-positive", "neg": "Negative"}[label]) for text, label in sentiment_rows(80)]
    data = write_csv(folder / "train.csv", rows)
    result = finetune.main([
        "--task", "classify", "--base", str(base), "--data", str(data), "--method", "adapter",
        "--adapter_size", "8", "--lr", "1e-2", "--max_iters", "60", "--batch_size", "16", "--warmup_iters", "5",
        "--eval_interval", "20", "--eval_iters", "1", "--out_dir", str(folder / "run"), "--device", "cpu",
        "--progress", "false", "--head_dropout", "0", "--merge"])
    return folder, rows, result


def test_adapter_checkpoint_holds_only_the_trained_tensors_and_a_base_pointer(adapter_run):
    folder, _, _ = adapter_run
    saved = load_file(folder / "run" / "best" / "model.safetensors")
    config = json.loads((folder / "run" / "best" / "config.json").read_text())
    assert config["base"]["path"] == str((folder / "base").resolve())
    assert all(".adapter." in name or name.startswith("classifier.") for name in saved)
    assert any(name.startswith("classifier.") for name in saved)


def val_rows(rows):
    from data.finetune_data import held_out_split
    _, val = held_out_split([TextExample(text, label) for text, label in rows], 0.1)
    return [e.text for e in val], [e.label for e in val]


def test_label_mapping_survives_save_and_load(adapter_run):
    folder, rows, result = adapter_run
    config = json.loads((folder / "run" / "best" / "config.json").read_text())
    assert config["labels"] == ["Negative", "zz-positive"]
    texts, labels = val_rows(rows)
    assert result["best"] == 1.0  # the tiny task is learned, so each prediction can be checked
    assert [label for label, _ in finetune.predict(folder / "run", texts)] == labels


def test_merged_checkpoint_predicts_like_the_adapter_checkpoint_without_the_base(adapter_run):
    folder, rows, _ = adapter_run
    config = json.loads((folder / "run" / "merged" / "config.json").read_text())
    assert config["base"] is None
    texts = [text for text, _ in rows]
    merged, adapter_only = finetune.predict(folder / "run" / "merged", texts), finetune.predict(folder / "run", texts)
    assert [label for label, _ in merged] == [label for label, _ in adapter_only]
    assert [p for _, p in merged] == pytest.approx([p for _, p in adapter_only], abs=1e-5)


def test_checkpoint_whose_base_changed_is_refused(adapter_run, tmp_path):
    folder, _, _ = adapter_run
    shutil.copytree(folder / "run" / "best", tmp_path / "best")
    other_base = save_bert_base(tmp_path / "other_base", seed=1)
    config = json.loads((tmp_path / "best" / "config.json").read_text())
    config["base"]["path"] = str(other_base)
    (tmp_path / "best" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="has changed since fine-tuning"):
        finetune.predict(tmp_path / "best", ["the film was good"])


def test_checkpoint_whose_base_moved_names_the_path_it_looked_for(adapter_run, tmp_path):
    folder, _, _ = adapter_run
    shutil.copytree(folder / "run" / "best", tmp_path / "best")
    config = json.loads((tmp_path / "best" / "config.json").read_text())
    config["base"]["path"] = str(tmp_path / "the-old-place")  # where the base was when it was fine-tuned
    (tmp_path / "best" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"base model is not at {tmp_path / 'the-old-place'} any more"):
        finetune.predict(tmp_path / "best", ["the film was good"])


def tagged_sentences(n=16, seed=0):
    """Sentences of 2 to 12 words, every word tagged (one of 3 tags): the slices of a batch hold different
    numbers of tagged words."""
    g = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(n):
        length = int(torch.randint(2, 13, (1,), generator=g))
        ids = torch.randint(5, len(tiny_wordpiece().vocab), (length,), generator=g).tolist()
        tags = torch.randint(0, 3, (length,), generator=g).tolist()
        examples.append({"input_ids": [2, *ids, 3], "attention_mask": [1] * (length + 2),
                         "token_type_ids": [0] * (length + 2), "labels": [IGNORE_INDEX, *tags, IGNORE_INDEX]})
    return {"train": examples, "val": examples}


def test_a_taggers_slices_average_to_the_loss_of_the_whole_step():
    """What accumulation and DDP compute (the mean of the slices' losses) equals the loss of the whole batch,
    though the two halves hold different numbers of tagged words."""
    task = TaggingTask(tagged_sentences(), pad_id=0, labels=["A", "B", "C"])
    model = TokenTagger(tiny_bert(), num_labels=3).eval()  # no dropout: the same numbers each pass
    whole = task.get_batch("train", 8, torch.Generator().manual_seed(0))
    halves = split_batch(whole, 2)
    assert len({int((half["labels"] != IGNORE_INDEX).sum()) for half in halves}) == 2  # the counts differ
    averaged = sum(task.loss(model, half) for half in halves) / 2
    torch.testing.assert_close(averaged, task.loss(model, whole), rtol=1e-6, atol=0)
    plain = sum(model(**half)[1] for half in halves) / 2  # the average of the unweighted means
    assert abs(plain.item() - task.loss(model, whole).item()) > 1e-4
