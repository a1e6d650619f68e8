"""Toy tasks that a tiny model learns in seconds, through the same Trainer as the real runs: a quick
check that the model, the loss and the loop are right, before spending minutes on text (like minGPT's
sorting and the Annotated Transformer's copy task).

    SortTask         train_gpt.py --config toy    "3 1 4 1 5 9 = 1 1 3 4 5 9": GPT writes the digits sorted
    PalindromeTask   train_bert.py --config toy   [CLS] 2 7 [MASK] 3 7 2 [SEP]: BERT fills in the 3

Every example is drawn afresh from the trainer's generator (so --resume redraws the same batches).
A string is held out when a hash of its digits falls in the lowest 10% (`is_held_out`): training never
draws one, evaluation only draws those, so the accuracies are on strings the model has never seen.
The tasks work in their own ids, `task.vocab[i]` being the text of id i; the scripts build a tokenizer
from that list for the checkpoint. docs/training.md ("Toy tasks") has the figures.
"""

from dataclasses import asdict, dataclass, field

import torch

from common.errors import ConfigError

from ..model.losses import IGNORE_INDEX
from .trainer import Task, Trainer, TrainConfig, seed_everything

HELD_OUT_SHARE = 0.1  # of all digit strings; never trained on
TOY_TASK_NAMES = ("sort", "palindrome")


@dataclass
class ToyConfig:
    toy_task: str | None = field(default=None, metadata={
        "choices": TOY_TASK_NAMES, "help": "train on a toy task instead of text: sort (train_gpt.py) or "
                                           "palindrome (train_bert.py); see docs/training.md"})
    toy_length: int = field(default=6, metadata={"help": "digits per toy string"})
    toy_val_size: int = field(default=1000, metadata={"help": "held-out toy strings in each evaluation"})

    def __post_init__(self):
        if self.toy_length < 2 or self.toy_val_size < 1:
            raise ValueError(f"toy_length must be >= 2 and toy_val_size >= 1, got {self.toy_length} "
                             f"and {self.toy_val_size}")


def is_held_out(digits: torch.Tensor) -> torch.Tensor:
    """(B, L) digits -> (B,) bool: True for the held-out strings. FNV-1a, a 32-bit hash of the digits, so
    the split scatters over all strings instead of following a pattern the model could notice."""
    hash_ = torch.full((len(digits),), 2166136261, dtype=torch.int64)
    for column in digits.T:  # (B,) each: the i-th digit of every string
        hash_ = ((hash_ ^ column) * 16777619) % 2**32
    return hash_ < HELD_OUT_SHARE * 2**32


def draw_digits(batch_size: int, length: int, generator: torch.Generator, held_out: bool) -> torch.Tensor:
    """(batch_size, length) random digits 0-9, all training strings or all held-out ones (rejection sampling)."""
    tries = batch_size * (20 if held_out else 2)  # enough that one round nearly always suffices
    kept, count = [], 0
    while count < batch_size:
        digits = torch.randint(10, (tries, length), generator=generator)  # (tries, L)
        digits = digits[is_held_out(digits) == held_out]
        kept.append(digits)
        count += len(digits)
    return torch.cat(kept)[:batch_size]


def spaced(vocab: list[str], ids) -> str:
    return " ".join(vocab[i] for i in ids)


class ToyTask(Task):
    """What both toy tasks share: fixed held-out examples for the accuracy, drawn once with seed 0."""

    def draw(self, batch_size: int, generator: torch.Generator, held_out: bool) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def get_batch(self, split, batch_size, generator):
        return self.draw(batch_size, generator, held_out=split == "val")

    def held_out_examples(self) -> dict[str, torch.Tensor]:
        if not hasattr(self, "_held_out"):
            self._held_out = self.draw(self.val_size, torch.Generator().manual_seed(0), held_out=True)
        return self._held_out


class SortTask(ToyTask):
    """GPT writes a string of digits sorted: "3 1 4 1 5 9 =" -> "1 1 3 4 5 9".

    Why sorting: the k-th digit of the answer depends on every input digit (how many are smaller), so
    the model must attend across the whole prompt, not just copy the previous token as a bigram model
    could; reversing needs only one position per step, adding mostly the neighbouring column. And it
    is checkable: an answer is right or wrong, so the metric is exact match (val_exact), decoded
    greedily on held-out strings. The loss counts only the answer positions (IGNORE_INDEX elsewhere):
    the prompt digits are random, there is nothing to learn in predicting them.
    """

    vocab = [*"0123456789", "="]
    separator_id = 10
    metric, metric_means = "val_exact", "whole answer right, greedy, on held-out strings"

    def __init__(self, length: int = 6, val_size: int = 1000):
        self.length, self.val_size = length, val_size
        self.block_size = 2 * length  # the input: prompt (L), "=", answer but its last digit

    def draw(self, batch_size, generator, held_out):
        digits = draw_digits(batch_size, self.length, generator, held_out)  # (B, L)
        separator = torch.full((batch_size, 1), self.separator_id)  # (B, 1)
        sequence = torch.cat([digits, separator, digits.sort(dim=1).values], dim=1)  # (B, 2L+1)
        targets = sequence[:, 1:].clone()  # (B, 2L): targets[:, t] is the token after position t
        targets[:, :self.length] = IGNORE_INDEX  # the prompt digits and the "=": not the model's to guess
        return {"input_ids": sequence[:, :-1], "targets": targets}

    def loss(self, model, batch):
        _, loss = model(batch["input_ids"], targets=batch["targets"])
        return loss

    def solve(self, model, prompts: torch.Tensor) -> torch.Tensor:
        """(N, L+1) prompts ending in "=" -> (N, L) greedy answers."""
        return model.generate(prompts, self.length, temperature=0.0)[:, -self.length:]

    def evaluate(self, model, cfg: TrainConfig, device: str) -> dict[str, float]:
        """train_loss, val_loss and val_exact: the share of held-out strings whose whole answer is right."""
        metrics = super().evaluate(model, cfg, device)
        batch = self.held_out_examples()
        prompts = batch["input_ids"][:, :self.length + 1].to(device)  # (N, L+1)
        answers = batch["targets"][:, self.length:].to(device)  # (N, L)
        metrics["val_exact"] = (self.solve(model, prompts) == answers).all(dim=1).float().mean().item()
        return metrics

    @torch.no_grad()
    def examples(self, model, device: str, count: int = 4) -> list[str]:
        """Solved held-out strings, as text."""
        prompts = self.held_out_examples()["input_ids"][:count, :self.length + 1].to(device)  # (count, L+1)
        return [f"{spaced(self.vocab, prompt)} {spaced(self.vocab, answer)}"
                for prompt, answer in zip(prompts.tolist(), self.solve(model, prompts).tolist())]


BERT_TOY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"0123456789"]
CLS_ID, SEP_ID, MASK_ID, FIRST_DIGIT_ID = 2, 3, 4, 5


class PalindromeTask(ToyTask):
    """BERT recovers masked digits of a palindrome: [CLS] 2 7 [MASK] 3 7 2 [SEP] -> the [MASK] is 3.

    Of each mirror pair (i, L-1-i) at most one digit is masked, half of the pairs, so every masked
    digit is given by its mirror, and only by it (the first half is random). A masked digit in the
    first half has its mirror to its right: a left-to-right model cannot see it, BERT's attention in
    both directions can. Masked positions simply become [MASK] (no 80/10/10) and there is no
    next-sentence task: the loss is the masked-LM loss, the metric val_masked_acc on held-out
    palindromes (the hash is of the first half, which makes the palindrome).
    """

    vocab = BERT_TOY_VOCAB
    metric, metric_means = "val_masked_acc", "masked digits recovered, on held-out palindromes"

    def __init__(self, length: int = 6, val_size: int = 1000):
        if length % 2:
            raise ConfigError(f"a palindrome of mirror pairs has an even toy_length, got {length}")
        self.half, self.val_size = length // 2, val_size
        self.masked_pairs = max(1, self.half // 2)
        self.block_size = length + 2  # [CLS] digits [SEP]

    def draw(self, batch_size, generator, held_out):
        first_half = draw_digits(batch_size, self.half, generator, held_out) + FIRST_DIGIT_ID  # (B, H)
        ids = torch.cat([first_half, first_half.flip(1)], dim=1)  # (B, 2H)
        ranks = torch.rand(batch_size, self.half, generator=generator).argsort(1).argsort(1)  # (B, H)
        masked_pairs = ranks < self.masked_pairs  # (B, H): masked_pairs of the H pairs, at random
        in_first_half = torch.rand(batch_size, self.half, generator=generator) < 0.5  # (B, H) which one
        to_mask = torch.cat([masked_pairs & in_first_half, (masked_pairs & ~in_first_half).flip(1)], dim=1)
        input_ids = torch.where(to_mask, MASK_ID, ids)  # (B, 2H)
        labels = torch.where(to_mask, ids, IGNORE_INDEX)  # (B, 2H)
        cls, sep = torch.full((batch_size, 1), CLS_ID), torch.full((batch_size, 1), SEP_ID)
        no_label = torch.full((batch_size, 1), IGNORE_INDEX)
        return {"input_ids": torch.cat([cls, input_ids, sep], dim=1),  # (B, 2H+2)
                "mlm_labels": torch.cat([no_label, labels, no_label], dim=1)}  # (B, 2H+2)

    def loss(self, model, batch):
        return model(**batch).mlm_loss  # no nsp_labels: the next-sentence head is not trained

    def predict(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The (N,) guesses and the (N,) true digits at the N masked positions of the batch."""
        out = model(**batch)
        return out.mlm_logits.argmax(-1), batch["mlm_labels"][batch["mlm_labels"] != IGNORE_INDEX]

    def evaluate(self, model, cfg: TrainConfig, device: str) -> dict[str, float]:
        """train_loss, val_loss and val_masked_acc: the share of masked held-out digits recovered."""
        metrics = super().evaluate(model, cfg, device)
        guesses, truth = self.predict(model, {k: v.to(device) for k, v in self.held_out_examples().items()})
        metrics["val_masked_acc"] = (guesses == truth).float().mean().item()
        return metrics

    @torch.no_grad()
    def examples(self, model, device: str, count: int = 4) -> list[str]:
        """Held-out palindromes as the model saw them, then with its guesses filled in."""
        batch = {k: v[:count].to(device) for k, v in self.held_out_examples().items()}
        guesses, _ = self.predict(model, batch)
        filled = batch["input_ids"].clone()  # (count, T)
        filled[batch["mlm_labels"] != IGNORE_INDEX] = guesses
        return [f"{spaced(self.vocab, seen[1:-1])}  ->  {spaced(self.vocab, answer[1:-1])}"
                for seen, answer in zip(batch["input_ids"].tolist(), filled.tolist())]


def make_toy_task(toy_cfg: ToyConfig, model_family: str) -> ToyTask:
    """The Task toy_cfg names, checked to be one for model_family ("GPT" or "BERT")."""
    tasks = {"GPT": {"sort": SortTask}, "BERT": {"palindrome": PalindromeTask}}[model_family]
    if toy_cfg.toy_task not in tasks:
        raise ConfigError(f"--toy_task {toy_cfg.toy_task} is not a {model_family} toy task; choose "
                         f"{', '.join(tasks)}")
    return tasks[toy_cfg.toy_task](toy_cfg.toy_length, toy_cfg.toy_val_size)


def train_toy_model(model_class, model_cfg, train_cfg: TrainConfig, toy_cfg: ToyConfig, task: ToyTask,
                    tokenizer) -> dict:
    """Build model_class (GPT or BertForPreTraining) for task and train it with the shared Trainer; the
    tokenizer (over task.vocab, made by the script) goes into each checkpoint, so sample.py can load it."""
    if model_cfg.block_size < task.block_size:
        raise ConfigError(f"--toy_length {toy_cfg.toy_length} needs --block_size {task.block_size} or more")
    model_cfg.vocab_size = tokenizer.vocab_size
    seed_everything(train_cfg.seed)
    model = model_class(model_cfg)
    print(f"toy task {toy_cfg.toy_task}: {toy_cfg.toy_length} digits; model: {model.num_parameters() / 1e6:.2f}M "
          f"parameters, {model_cfg.n_layer} layers, {model_cfg.n_head} heads, {model_cfg.n_embd} wide")
    checkpoint_config = {"model_class": model_class.__name__, "model": model_cfg.to_dict(), "toy": asdict(toy_cfg)}
    trainer = Trainer(model, task, train_cfg, checkpoint_config,
                      write_extra=lambda folder: tokenizer.save(folder / "tokenizer"))
    metrics = trainer.run()
    if trainer.dist.is_main:
        print(f"final: {task.metric} {metrics.get(task.metric, 0):.1%} ({task.metric_means}, {toy_cfg.toy_val_size} "
              f"of them); checkpoints in {train_cfg.out_dir}/best and /ckpt")
        print("\n".join(task.examples(trainer.model.eval(), trainer.device)))
    return metrics
