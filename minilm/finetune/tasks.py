"""The fine-tuning Tasks for minilm/training/trainer.py: sequence classification, token tagging, and next-token
prediction with a PEFT method (PeftLanguageModelTask).

Examples arrive already encoded (minilm/finetune/encode.py): dicts of id lists plus "labels". A batch
draws random examples (with replacement, from the trainer's generator, so a resumed run draws the
same ones) and pads them on the right to the longest in the batch:

    input_ids       (B, T)   pad_id after the end
    attention_mask  (B, T)   1 for real tokens, 0 for padding
    token_type_ids  (B, T)   0 after the end
    labels          (B,) for classification; (B, T) for tagging, IGNORE_INDEX after the end

Evaluation runs over the whole validation split, in order, so its numbers are exact and repeatable.
"""

import torch

from common.errors import DataError

from ..model.losses import IGNORE_INDEX
from ..training.checkpoint import unwrap_model
from ..training.lm_task import LanguageModelTask
from ..training.trainer import Task, share_of_step, to_device
from .tagging_metrics import entity_scores, is_bio_tagset, token_accuracy


def pad_batch(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of encoded examples into one batch of tensors."""
    T = max(len(e["input_ids"]) for e in examples)
    batch = {"input_ids": [], "attention_mask": [], "token_type_ids": [], "labels": []}
    for e in examples:
        n_pad = T - len(e["input_ids"])
        batch["input_ids"].append(e["input_ids"] + [pad_id] * n_pad)
        batch["attention_mask"].append([1] * len(e["input_ids"]) + [0] * n_pad)
        batch["token_type_ids"].append(e["token_type_ids"] + [0] * n_pad)
        labels = e["labels"]
        batch["labels"].append(labels + [IGNORE_INDEX] * n_pad if isinstance(labels, list) else labels)
    return {name: torch.tensor(values, dtype=torch.long) for name, values in batch.items()}


class _LabelledTask(Task):
    def __init__(self, examples: dict[str, list[dict]], pad_id: int, labels: list[str], peft_controller=None):
        for split in self.splits:
            if not examples.get(split):
                raise DataError(f"the {split} split has no examples; it needs at least one")
        self.examples, self.pad_id, self.labels = examples, pad_id, labels
        self.peft_controller = peft_controller  # AdaLoRA's: a loss penalty and a rank update per step

    def get_batch(self, split, batch_size, generator):
        pool = self.examples[split]
        picks = torch.randint(len(pool), (batch_size,), generator=generator).tolist()
        return pad_batch([pool[i] for i in picks], self.pad_id)

    def loss(self, model, batch):
        _, loss = model(**batch)
        loss = loss * self.mean_weight(batch)
        if self.peft_controller is not None and model.training:  # evaluation reports the plain loss
            loss = loss + self.peft_controller.penalty(unwrap_model(model))
        return loss

    def mean_weight(self, batch) -> float:
        """1: a classifier's loss is a mean over sequences, as many in every slice of a step."""
        return 1.0

    def on_gradients(self, model, step):
        if self.peft_controller is not None:
            self.peft_controller.update(model, step)

    def count_tokens(self, batch):
        return int(batch["attention_mask"].sum())

    def evaluate(self, model, cfg, device):
        """train_loss on eval_iters random batches (fixed seed); val_loss and the task's scores on
        the whole validation split."""
        generator = torch.Generator().manual_seed(0)
        train_losses = [self.loss(model, to_device(self.get_batch("train", cfg.batch_size, generator), device)).item()
                        for _ in range(cfg.eval_iters)]
        val_loss, golds, preds = self.predict_split("val", model, cfg.batch_size, device)
        metrics = {"train_loss": sum(train_losses) / len(train_losses), "val_loss": val_loss}
        metrics.update(self.scores(golds, preds))
        return metrics

    def predict_split(self, split, model, batch_size, device):
        """(mean loss over examples, gold labels, predicted labels) over the whole split, in order."""
        examples = self.examples[split]
        total_loss, golds, preds = 0.0, [], []
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            batch = to_device(pad_batch(chunk, self.pad_id), device)
            logits, loss = model(**batch)
            total_loss += loss.item() * len(chunk)  # val_loss is a mean over examples
            for gold, pred in self.gold_and_predicted(batch["labels"], logits.argmax(dim=-1)):
                golds.append(gold)
                preds.append(pred)
        return total_loss / len(examples), golds, preds


class ClassificationTask(_LabelledTask):
    """Metric: val_acc, the share of validation examples whose arg-max label is right."""

    default_metric = ("val_acc", "max")

    def gold_and_predicted(self, labels, predicted):  # (B,), (B,)
        return zip(labels.tolist(), predicted.tolist())

    def scores(self, golds, preds) -> dict[str, float]:
        return {"val_acc": sum(g == p for g, p in zip(golds, preds)) / len(golds)}


class TaggingTask(_LabelledTask):
    """Metrics: val_acc (token accuracy over words) and, for a BIO tag set, val_precision,
    val_recall and val_f1 over entities (minilm/finetune/tagging_metrics.py)."""

    @property
    def default_metric(self):
        return ("val_f1", "max") if is_bio_tagset(self.labels) else ("val_acc", "max")

    def get_batch(self, split, batch_size, generator):
        batch = super().get_batch(split, batch_size, generator)
        if split == "train":  # the whole step's batch: every process draws all of it, then keeps its slice
            self.step_counts = tagged_counts(batch)
        return batch

    def mean_weight(self, batch) -> float:
        """A tagger's loss is a mean over the tagged words, and sentences differ in length: the slices of a
        step (accumulation, DDP) hold different counts, so each mean is weighed by its share of the step's."""
        return share_of_step(tagged_counts(batch), self.step_counts, "tagged")

    def gold_and_predicted(self, labels, predicted):  # (B, T), (B, T) -> one tag list per sentence
        for gold_row, pred_row in zip(labels.tolist(), predicted.tolist()):
            pairs = [(g, p) for g, p in zip(gold_row, pred_row) if g != IGNORE_INDEX]
            yield [self.labels[g] for g, _ in pairs], [self.labels[p] for _, p in pairs]

    def scores(self, golds, preds) -> dict[str, float]:
        metrics = {"val_acc": token_accuracy(golds, preds)}
        if is_bio_tagset(self.labels):
            entity = entity_scores(golds, preds)
            metrics.update({f"val_{name}": value for name, value in entity.items()})
        return metrics


def tagged_counts(batch) -> dict[str, int]:
    """The tagged words (labels other than IGNORE_INDEX) and the sequences of a batch: share_of_step's counts."""
    return {"tagged": int((batch["labels"] != IGNORE_INDEX).sum()), "sequences": len(batch["input_ids"])}


class PeftLanguageModelTask(LanguageModelTask):
    """The next-token Task of train_gpt.py, plus AdaLoRA's penalty and rank update when it is the method."""

    peft_controller = None
    default_metric = ("val_loss", "min")

    def loss(self, model, batch):
        loss = super().loss(model, batch)
        if self.peft_controller is not None and model.training:  # evaluation reports the plain loss
            loss = loss + self.peft_controller.penalty(model)
        return loss

    def on_gradients(self, model, step):
        if self.peft_controller is not None:
            self.peft_controller.update(model, step)
