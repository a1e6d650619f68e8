"""The BERT pretraining Task of train_bert.py: masked-LM + next-sentence prediction on sentence pairs.

Pairs come from a sampler (data/bert_pairs.py's PairSampler: `sample(batch_size, generator)` returns
input_ids, token_type_ids, attention_mask and nsp_labels) and are masked afresh for every batch
(`mask_pairs`, BERT's 15% / 80-10-10 rule from minilm/model/losses.py), so the same pair is masked
differently each time it is drawn: RoBERTa's "dynamic masking". docs/bert_pretraining.md explains it.
"""

import torch

from ..model.losses import IGNORE_INDEX, mask_tokens
from .trainer import Task, TrainConfig, to_device


def mask_pairs(batch: dict[str, torch.Tensor], mask_id: int, vocab_size: int, mlm_prob: float,
               generator: torch.Generator, cls_id: int, sep_id: int) -> dict[str, torch.Tensor]:
    """A fresh 80/10/10 mask over the real tokens of A and B (never [CLS], [SEP] or padding)."""
    ids = batch["input_ids"]
    special = (ids == cls_id) | (ids == sep_id) | (batch["attention_mask"] == 0)
    masked, labels = mask_tokens(ids, special, mask_id, vocab_size, mlm_prob, generator)
    return {**batch, "input_ids": masked, "mlm_labels": labels}


class PretrainingTask(Task):
    """Masked-LM + next-sentence prediction on pairs drawn afresh (and masked afresh) for every batch.

    samplers has one PairSampler per split, and "phase1" (shorter pairs) when phase1_iters > 0: the first
    phase1_iters training steps draw phase1_batch_size of those for every batch_size pairs of a later step."""

    def __init__(self, samplers: dict, tokenizer, mlm_prob: float, nsp_weight: float = 1.0,
                 phase1_iters: int = 0, phase1_batch_size: int = 1, batch_size: int = 1):
        self.samplers, self.tokenizer, self.mlm_prob, self.nsp_weight = samplers, tokenizer, mlm_prob, nsp_weight
        self.phase1_iters, self.phase1_batch_size, self.batch_size = phase1_iters, phase1_batch_size, batch_size
        self.step = 0  # the trainer's step, set by on_step_start
        self.eval_batches: dict[str, list] = {}  # split -> the same batches at every evaluation

    def on_step_start(self, step):
        self.step = step

    def get_batch(self, split, batch_size, generator):
        if split == "train" and self.step < self.phase1_iters:
            # batch_size may be several processes' or micro-batches' worth: scale it, keep the multiple.
            return self.draw(self.samplers["phase1"], batch_size * self.phase1_batch_size // self.batch_size,
                             generator)
        return self.draw(self.samplers[split], batch_size, generator)

    def draw(self, sampler, batch_size: int, generator) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        pairs = sampler.sample(batch_size, generator)
        return mask_pairs(pairs, tok.mask_id, tok.vocab_size, self.mlm_prob, generator, tok.cls_id, tok.sep_id)

    def loss(self, model, batch):
        out = model(**batch)  # the batch keys are forward's arguments
        return out.mlm_loss + self.nsp_weight * out.nsp_loss

    def count_tokens(self, batch):
        return int(batch["attention_mask"].sum())

    def fixed_batches(self, split: str, cfg: TrainConfig) -> list[dict[str, torch.Tensor]]:
        if split not in self.eval_batches:
            generator = torch.Generator().manual_seed(0)
            self.eval_batches[split] = [self.draw(self.samplers[split], cfg.batch_size, generator)
                                        for _ in range(cfg.eval_iters)]
        return self.eval_batches[split]

    def evaluate(self, model, cfg, device):
        """Per split: MLM loss and accuracy over all masked positions, NSP loss and accuracy over all pairs."""
        metrics = {}
        for split in self.splits:
            sums = dict(mlm_loss=0.0, mlm_correct=0, n_masked=0, nsp_loss=0.0, nsp_correct=0, n_pairs=0)
            for batch in self.fixed_batches(split, cfg):
                batch = to_device(batch, device)
                out = model(**batch)
                labels = batch["mlm_labels"][batch["mlm_labels"] != IGNORE_INDEX]  # (N,) as out.mlm_logits
                sums["mlm_loss"] += out.mlm_loss.item() * len(labels)
                sums["mlm_correct"] += (out.mlm_logits.argmax(-1) == labels).sum().item()
                sums["n_masked"] += len(labels)
                sums["nsp_loss"] += out.nsp_loss.item() * len(batch["nsp_labels"])
                sums["nsp_correct"] += (out.nsp_logits.argmax(-1) == batch["nsp_labels"]).sum().item()
                sums["n_pairs"] += len(batch["nsp_labels"])
            metrics[f"{split}_mlm_loss"] = sums["mlm_loss"] / sums["n_masked"]
            metrics[f"{split}_nsp_loss"] = sums["nsp_loss"] / sums["n_pairs"]
            metrics[f"{split}_loss"] = metrics[f"{split}_mlm_loss"] + metrics[f"{split}_nsp_loss"]
            metrics[f"{split}_mlm_acc"] = sums["mlm_correct"] / sums["n_masked"]
            metrics[f"{split}_nsp_acc"] = sums["nsp_correct"] / sums["n_pairs"]
        return metrics

    def baselines(self, cfg: TrainConfig, most_frequent_id: int) -> dict[str, float]:
        """What a model without a clue scores on the validation batches: always the most frequent
        training token for MLM, always the more common label for NSP."""
        batches = self.fixed_batches("val", cfg)
        labels = torch.cat([b["mlm_labels"][b["mlm_labels"] != IGNORE_INDEX] for b in batches])
        nsp = torch.cat([b["nsp_labels"] for b in batches]).float().mean().item()
        return {"mlm_acc": (labels == most_frequent_id).float().mean().item(), "nsp_acc": max(nsp, 1 - nsp)}
