"""The language-modelling Task that train_gpt.py and finetune.py share: next-token prediction on
random windows of a token stream.

The token stream is one array per split (a numpy memmap, so a 1 GB corpus costs no memory until
batches are read; data/prepare.py writes them). Each batch is batch_size windows of block_size + 1
tokens at random starts: the first block_size tokens are the input, the last block_size the targets.
"""

import math

import numpy as np
import torch

from .trainer import Task


def get_batch(tokens: np.ndarray, batch_size: int, block_size: int, generator: torch.Generator,
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``block_size`` tokens and, for each, the next-token targets.

    The start positions come from ``generator``, so saving ``generator.get_state()`` in a checkpoint and
    restoring it resumes the exact same batches. Returns int64 tensors x, y of shape (B, T), y[:, t] being
    the token after x[:, t].
    """
    if len(tokens) <= block_size:
        raise ValueError(f"a split of {len(tokens)} tokens is too short for block_size={block_size}: it needs "
                         "at least block_size + 1 tokens; use a longer text or a smaller block_size")
    starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator).numpy()  # (B,)
    positions = starts[:, None] + np.arange(block_size + 1)  # (B, T+1)
    windows = torch.from_numpy(tokens[positions].astype(np.int64))  # (B, T+1): one gather, no loop over B
    return windows[:, :-1], windows[:, 1:]  # x, y: (B, T) each


class LanguageModelTask(Task):
    """Next-token prediction on random windows of a token stream (one array per split)."""

    def __init__(self, tokens: dict[str, np.ndarray], block_size: int):
        self.tokens, self.block_size = tokens, block_size

    def get_batch(self, split, batch_size, generator):
        input_ids, targets = get_batch(self.tokens[split], batch_size, self.block_size, generator)  # (B, T) each
        return {"input_ids": input_ids, "targets": targets}

    def loss(self, model, batch):
        _, loss = model(batch["input_ids"], targets=batch["targets"])
        return loss

    def evaluate(self, model, cfg, device):
        metrics = super().evaluate(model, cfg, device)
        metrics["val_ppl"] = perplexity(metrics["val_loss"])
        return metrics


def perplexity(mean_loss: float) -> float:
    """e^(mean negative log-likelihood); inf rather than an OverflowError past what a float holds."""
    return math.inf if mean_loss > 709 else math.exp(mean_loss)
