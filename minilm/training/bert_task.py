"""The masked-LM pretraining Tasks of train_bert.py: masked-LM alone (RoBERTa), and masked-LM plus a
sentence-pair head (BERT's next-sentence prediction, ALBERT's sentence-order prediction).

Sequences come from a sampler (data/bert_pairs.py's PairSampler, data/full_sentences.py's
FullSentenceSampler: `sample(batch_size, generator)` returns input_ids, token_type_ids, attention_mask,
and nsp_labels for pairs) and are masked afresh for every batch (`mask_pairs`, BERT's 15% / 80-10-10
rule from minilm/model/losses.py), so the same sequence is masked differently each time it is drawn:
RoBERTa's "dynamic masking". docs/bert_pretraining.md and docs/successors.md explain it.
"""

from collections import Counter
from dataclasses import dataclass

import torch

from ..model.losses import IGNORE_INDEX, mask_tokens
from .trainer import Task, TrainConfig, share_of_step, to_device


def mask_pairs(batch: dict[str, torch.Tensor], mask_id: int, vocab_size: int, mlm_prob: float,
               generator: torch.Generator, cls_id: int, sep_id: int) -> dict[str, torch.Tensor]:
    """A fresh 80/10/10 mask over the real tokens (never [CLS], [SEP] or padding)."""
    ids = batch["input_ids"]
    special = (ids == cls_id) | (ids == sep_id) | (batch["attention_mask"] == 0)
    masked, labels = mask_tokens(ids, special, mask_id, vocab_size, mlm_prob, generator)
    return {**batch, "input_ids": masked, "mlm_labels": labels}


@dataclass
class Baseline:
    """What a model without a clue scores on an accuracy: `value`, by doing what `means` says. `curve`
    names a metric that holds the baseline at every evaluation, when it moves during training (ELECTRA's
    share of original tokens grows as its generator gets better)."""
    value: float
    means: str
    curve: str | None = None


class MaskedLMTask(Task):
    """Masked-LM on sequences drawn afresh (and masked afresh) for every batch: RoBERTa's objective.

    samplers has one sampler per split, and "phase1" (shorter sequences) when phase1_iters > 0: the first
    phase1_iters training steps draw phase1_batch_size of those for every batch_size sequences of a later step."""

    accuracies = [("mlm_acc", "MLM")]  # (metric, label) pairs for the final line and accuracy.png

    def __init__(self, samplers: dict, tokenizer, mlm_prob: float, phase1_iters: int = 0,
                 phase1_batch_size: int = 1, batch_size: int = 1):
        self.samplers, self.tokenizer, self.mlm_prob = samplers, tokenizer, mlm_prob
        self.phase1_iters, self.phase1_batch_size, self.batch_size = phase1_iters, phase1_batch_size, batch_size
        self.step = 0  # the trainer's step, set by on_step_start
        self.eval_batches: dict[str, list] = {}  # split -> the same batches at every evaluation
        self.step_counts: dict[str, int] = {}  # the whole training step's counts (loss_counts), set by get_batch

    def on_step_start(self, step):
        self.step = step

    def get_batch(self, split, batch_size, generator):
        if split == "train" and self.step < self.phase1_iters:
            # batch_size may be several processes' or micro-batches' worth: scale it, keep the multiple.
            batch = self.draw(self.samplers["phase1"], batch_size * self.phase1_batch_size // self.batch_size,
                              generator)
        else:
            batch = self.draw(self.samplers[split], batch_size, generator)
        if split == "train":  # the whole step's batch: every process draws all of it, then keeps its slice
            self.step_counts = self.loss_counts(batch)
        return batch

    def loss_counts(self, batch) -> dict[str, int]:
        """What each mean in the loss divides by: masked tokens (masked-LM), real tokens (ELECTRA's
        detection), and the sequences, which say how many slices the step's batch was cut into."""
        return {"masked": int((batch["mlm_labels"] != IGNORE_INDEX).sum()),
                "real": int(batch["attention_mask"].sum()), "sequences": len(batch["input_ids"])}

    def share(self, batch, what: str) -> float:
        """The masked tokens are random (15%, at random), so the slices of a step hold different counts and
        the plain average of their means is not the mean over the batch: each mean is weighed by its share."""
        return share_of_step(self.loss_counts(batch), self.step_counts, what)

    def draw(self, sampler, batch_size: int, generator) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        sequences = sampler.sample(batch_size, generator)
        return mask_pairs(sequences, tok.mask_id, tok.vocab_size, self.mlm_prob, generator, tok.cls_id, tok.sep_id)

    def loss(self, model, batch):
        return model(**batch).mlm_loss * self.share(batch, "masked")  # the batch keys are forward's arguments

    def count_tokens(self, batch):
        return int(batch["attention_mask"].sum())

    def fixed_batches(self, split: str, cfg: TrainConfig) -> list[dict[str, torch.Tensor]]:
        if split not in self.eval_batches:
            generator = torch.Generator().manual_seed(0)
            self.eval_batches[split] = [self.draw(self.samplers[split], cfg.batch_size, generator)
                                        for _ in range(cfg.eval_iters)]
        return self.eval_batches[split]

    def evaluate(self, model, cfg, device):
        """Per split, over the same batches every time: the sums of add_sums, turned into metrics."""
        metrics = {}
        for split in self.splits:
            sums = Counter()
            for batch in self.fixed_batches(split, cfg):
                batch = to_device(batch, device)
                self.add_sums(sums, model(**batch), batch)
            metrics.update({f"{split}_{name}": value for name, value in self.metrics_of(sums).items()})
        return metrics

    def add_sums(self, sums: Counter, out, batch) -> None:
        """MLM loss and correct guesses, summed over the masked positions."""
        labels = batch["mlm_labels"][batch["mlm_labels"] != IGNORE_INDEX]  # (N,) as out.mlm_logits
        sums["mlm_loss"] += out.mlm_loss.item() * len(labels)
        sums["mlm_correct"] += (out.mlm_logits.argmax(-1) == labels).sum().item()
        sums["n_masked"] += len(labels)

    def metrics_of(self, sums: Counter) -> dict[str, float]:
        mlm_loss = sums["mlm_loss"] / sums["n_masked"]
        return {"mlm_loss": mlm_loss, "loss": mlm_loss, "mlm_acc": sums["mlm_correct"] / sums["n_masked"]}

    def baselines(self, cfg: TrainConfig, most_frequent_id: int, token: str, metrics: dict) -> dict[str, Baseline]:
        """MLM without a clue: always the most frequent training token, on the validation batches."""
        labels = torch.cat([b["mlm_labels"][b["mlm_labels"] != IGNORE_INDEX] for b in self.fixed_batches("val", cfg)])
        return {"mlm_acc": Baseline((labels == most_frequent_id).float().mean().item(), f"always {token!r}")}


class PretrainingTask(MaskedLMTask):
    """Masked-LM + a sentence-pair task on the pooled [CLS]: BERT's next-sentence prediction (pair_task
    "nsp"), or ALBERT's sentence-order prediction ("sop": the pairs are in order or swapped). The
    batch's nsp_labels hold either; the metrics are named after the pair task (val_nsp_acc, val_sop_acc)."""

    def __init__(self, samplers: dict, tokenizer, mlm_prob: float, nsp_weight: float = 1.0,
                 phase1_iters: int = 0, phase1_batch_size: int = 1, batch_size: int = 1, pair_task: str = "nsp"):
        super().__init__(samplers, tokenizer, mlm_prob, phase1_iters, phase1_batch_size, batch_size)
        self.nsp_weight, self.pair_task = nsp_weight, pair_task
        self.accuracies = [("mlm_acc", "MLM"), (f"{pair_task}_acc", pair_task.upper())]

    def loss(self, model, batch):
        out = model(**batch)
        return out.mlm_loss * self.share(batch, "masked") + self.nsp_weight * out.nsp_loss

    def add_sums(self, sums, out, batch):
        super().add_sums(sums, out, batch)
        sums["pair_loss"] += out.nsp_loss.item() * len(batch["nsp_labels"])
        sums["pair_correct"] += (out.nsp_logits.argmax(-1) == batch["nsp_labels"]).sum().item()
        sums["n_pairs"] += len(batch["nsp_labels"])

    def metrics_of(self, sums):
        """MLM loss and accuracy over all masked positions, the pair task's over all pairs."""
        mlm = super().metrics_of(sums)
        pair_loss = sums["pair_loss"] / sums["n_pairs"]
        return {"mlm_loss": mlm["mlm_loss"], f"{self.pair_task}_loss": pair_loss, "loss": mlm["mlm_loss"] + pair_loss,
                "mlm_acc": mlm["mlm_acc"], f"{self.pair_task}_acc": sums["pair_correct"] / sums["n_pairs"]}

    def baselines(self, cfg, most_frequent_id, token, metrics):
        """And for the pairs: always the more common label (NSP and SOP pairs are ~50/50: chance)."""
        share = torch.cat([b["nsp_labels"] for b in self.fixed_batches("val", cfg)]).float().mean().item()
        return {**super().baselines(cfg, most_frequent_id, token, metrics),
                f"{self.pair_task}_acc": Baseline(max(share, 1 - share), "always the more common label")}
