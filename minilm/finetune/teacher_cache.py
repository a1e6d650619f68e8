"""The teacher's logits on every training sentence, computed once before distillation starts
(docs/distillation.md, "The teacher's logits, once").

The teacher never trains and runs in eval mode (no dropout), so its logits on a sentence are the
same at every step: a function of the sentence's token ids alone. Running its 6 blocks on every
batch recomputes that function on the same few thousand sentences again and again. The cache runs
the teacher over each labelled and transfer sentence once, and a training step then looks the
logits up by the sentence's token ids:

    key(sentence)  =  its real token ids (the padding a batch adds is cut off first)
    logits[key]    =  teacher(sentence)                  (num_labels,), computed once

A padded batch gives the same logits as the sentence alone (the attention mask hides the padding
and mean pooling averages the real tokens only), up to float rounding: tests/test_distill.py checks
the two agree. Only the logits are kept: the cosine term (--cos_weight) needs every block's
hidden states for every token, about a thousand times more numbers, so with it the teacher runs live.
"""

import time

import torch
import torch.nn as nn

from .tasks import pad_batch


def sentence_key(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[int, ...]:
    """The real token ids of one row of a batch: input_ids, attention_mask (T,)."""
    return tuple(input_ids[attention_mask.bool()].tolist())


class TeacherLogitCache:
    """teacher(sentence) for the sentences given, looked up by token ids; a sentence not seen before
    (none, when every training and transfer sentence was given) is run through the teacher then."""

    def __init__(self, teacher: nn.Module, examples: list[dict], pad_id: int, batch_size: int = 64):
        assert not teacher.training, "in training mode (dropout) the teacher's logits change from pass to pass"
        self.teacher = teacher
        self.logits: dict[tuple[int, ...], torch.Tensor] = {}  # key -> (num_labels,)
        started = time.perf_counter()
        unique = list({tuple(item["input_ids"]): item for item in examples}.values())
        unique.sort(key=lambda item: len(item["input_ids"]))  # like lengths together: little padding
        for start in range(0, len(unique), batch_size):
            batch = pad_batch([{**item, "labels": 0} for item in unique[start:start + batch_size]], pad_id)
            self.add(batch)
        print(f"teacher cache: logits of {len(self.logits):,} sentences in {time.perf_counter() - started:.1f} s, "
              "once; training steps look them up instead of running the teacher")

    @torch.no_grad()
    def add(self, batch: dict[str, torch.Tensor]) -> None:
        """Run the teacher once over a padded batch (B, T) and keep each sentence's logits."""
        device = next(self.teacher.parameters()).device
        inputs = {name: batch[name].to(device) for name in ("input_ids", "attention_mask", "token_type_ids")}
        logits, _ = self.teacher(**inputs)  # (B, num_labels)
        for ids, mask, row in zip(batch["input_ids"], batch["attention_mask"], logits.float().cpu()):
            self.logits[sentence_key(ids, mask)] = row

    def lookup(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The teacher's logits (B, num_labels) for a padded batch (input_ids, attention_mask (B, T))."""
        cpu = {name: batch[name].cpu() for name in ("input_ids", "attention_mask", "token_type_ids")}
        keys = [sentence_key(ids, mask) for ids, mask in zip(cpu["input_ids"], cpu["attention_mask"])]
        unseen = [row for row, key in enumerate(keys) if key not in self.logits]
        if unseen:  # a sentence outside the cache: run the teacher on those rows alone
            self.add({name: tensor[unseen] for name, tensor in cpu.items()})
        return torch.stack([self.logits[key] for key in keys]).to(batch["input_ids"].device)
