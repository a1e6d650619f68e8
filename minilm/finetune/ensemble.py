"""An ensemble of fine-tuned checkpoints: the mean of their probabilities.

Models trained from different seeds (or with different methods) make different mistakes on a small
training set; averaging what they believe cancels some of them out:

    p(y | x) = (1/M) Σ_m softmax(logits_m(x))_y          (per example; per word for tagging)

`Ensemble` is a module like the heads it holds: forward returns (log p, the negative log-likelihood of
the labels), so predict and evaluation treat it as one more model (softmax of log p gives p back).
The members must mean the same thing by every number: one task (classify or tag), the same labels in
the same order, and the same tokenizer, since they all read the very same ids.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import CheckpointError

from ..model.losses import IGNORE_INDEX

ENSEMBLE_TASKS = ("classify", "tag")


class Ensemble(nn.Module):
    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.family = members[0].family  # "bert" or "gpt": how inputs are built (all members share a tokenizer)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        """Like SequenceClassifier / TokenTagger: log-probabilities (B, L) or (B, T, L), and the loss."""
        probs = torch.stack([member(input_ids, attention_mask, token_type_ids)[0].softmax(dim=-1)
                             for member in self.members]).mean(dim=0)  # (M, B, [T,] L) -> (B, [T,] L)
        log_probs = probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
        loss = None
        if labels is not None:
            loss = F.nll_loss(log_probs.flatten(0, -2), labels.flatten(), ignore_index=IGNORE_INDEX)
        return log_probs, loss


def ensemble_of(loaded: list[tuple], names: list[str], fingerprint) -> tuple[Ensemble, object, dict]:
    """(Ensemble, tokenizer, config) from load_finetuned's (model, tokenizer, config) per checkpoint,
    after checking they can be averaged. names: how the user gave each (--ckpt); fingerprint(tokenizer):
    a digest equal for tokenizers that encode alike (data/prepare.py's fingerprint_tokenizer)."""
    _, first_tokenizer, first = loaded[0]
    first_print = fingerprint(first_tokenizer)
    for name, (_, tokenizer, config) in zip(names, loaded):
        if config["task"] not in ENSEMBLE_TASKS:
            raise CheckpointError(f"--ckpt {name} is a --task {config['task']} checkpoint; an ensemble averages "
                                  f"label probabilities, so its members must be {' or '.join(ENSEMBLE_TASKS)} "
                                  "checkpoints")
        if config["task"] != first["task"] or config["labels"] != first["labels"]:
            raise CheckpointError(f"--ckpt {name} has labels {config['labels']} ({config['task']}), but --ckpt "
                                  f"{names[0]} has {first['labels']} ({first['task']}); ensemble checkpoints "
                                  "fine-tuned on the same label set")
        if fingerprint(tokenizer) != first_print:
            raise CheckpointError(f"--ckpt {name} has another tokenizer than --ckpt {names[0]}; the members of an "
                                  "ensemble read the same ids, so fine-tune them all from bases with one tokenizer")
    return Ensemble([model for model, _, _ in loaded]).eval(), first_tokenizer, first
