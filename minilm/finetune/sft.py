"""Instruction tuning (SFT): a chat model learns to answer from example conversations, written in its own format.

A conversation is rendered with the model's chat template (tokenizer/chat_template.py), the very text the
model reads when it chats, and trained as next-token prediction in which only the assistant's tokens count:
the model should learn to write answers, not to predict the user's questions or the system message.

    <|im_start|>system\\nBe brief.<|im_end|>\\n<|im_start|>user\\nWhere is it?<|im_end|>\\n<|im_start|>assistant\\n
    └─────────────────────── not scored (their targets are IGNORE_INDEX) ──────────────────────────────┘
    It ships today.<|im_end|>
    └─── scored ───┘└ scored too: the model must learn to end its turn

How the answer's tokens are found, for any template: render the conversation up to an assistant message
with the generation prompt (what the model is given when it must answer), then up to the end of that
message (what it should have written). The ids between the two are the answer; what the template writes
after the end-of-turn token (ChatML's newline) is layout the model never generates, so it is not scored.
Both renderings must be prefixes of the whole conversation's ids, which is checked.
"""

import torch
import torch.nn.functional as F

from common.errors import DataError

from ..model.losses import IGNORE_INDEX
from ..training.trainer import Task, share_of_step, to_device


class TooLongError(DataError):
    """A conversation that does not fit in max_length tokens."""


def encode_conversations(tokenizer, conversations: list[list[dict]], end_ids, max_length: int):
    """(encoded, n_left_out): encode_conversation of each; those longer than max_length are left out and
    counted (the caller says so), as tagging leaves out the words that do not fit."""
    encoded, too_long = [], 0
    for messages in conversations:
        try:
            encoded.append(encode_conversation(tokenizer, messages, end_ids, max_length))
        except TooLongError:
            too_long += 1
    return encoded, too_long


def encode_conversation(tokenizer, messages: list[dict], end_ids, max_length: int) -> dict[str, list[int]]:
    """messages ([{"role", "content"}, ...], at least one assistant message) -> {"input_ids", "targets"}, each
    of length n - 1 for the conversation's n ids: targets[t] is the id after input_ids[t] where that id is part
    of an assistant answer, else IGNORE_INDEX."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=False)
    if len(ids) > max_length:
        raise TooLongError(f"a conversation is {len(ids)} tokens and the model reads at most {max_length}: shorten it, "
                        "or split it into several conversations")
    scored = [False] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(_prefix_ids(tokenizer, messages[:i], ids, add_generation_prompt=True))
        end = len(_prefix_ids(tokenizer, messages[:i + 1], ids, add_generation_prompt=False))
        end = _through_end_of_turn(ids, start, end, end_ids)
        scored[start:end] = [True] * (end - start)
    if not any(scored):
        raise DataError("a conversation has no assistant message, so nothing in it would be learned; each must "
                        "end with (or contain) an answer: {'role': 'assistant', 'content': ...}")
    targets = [token if keep else IGNORE_INDEX for token, keep in zip(ids, scored)]
    return {"input_ids": ids[:-1], "targets": targets[1:]}


def _prefix_ids(tokenizer, messages, full_ids, add_generation_prompt: bool) -> list[int]:
    """The ids of the conversation's first messages, checked to be where the whole conversation begins."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt) if messages else []
    if full_ids[:len(ids)] != ids:
        raise DataError("the chat template writes a conversation's first turns differently when more turns follow, "
                        "so the assistant's tokens cannot be found by rendering the turns before them; "
                        "use a template whose turns do not depend on the turns after them (e.g. ChatML)")
    return ids


def _through_end_of_turn(ids, start: int, end: int, end_ids) -> int:
    """Where the answer's scored ids stop: just after its first end-of-turn id (or at end if it has none)."""
    for position in range(start, end):
        if ids[position] in end_ids:
            return position + 1
    return end


def pad_conversations(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right padding: a causal model's real tokens never see the padding after them, and the padding's
    targets are IGNORE_INDEX, so no attention mask is needed. input_ids, targets: (B, T)."""
    T = max(len(e["input_ids"]) for e in examples)
    input_ids = [e["input_ids"] + [pad_id] * (T - len(e["input_ids"])) for e in examples]
    targets = [e["targets"] + [IGNORE_INDEX] * (T - len(e["targets"])) for e in examples]
    return {"input_ids": torch.tensor(input_ids), "targets": torch.tensor(targets)}


def answer_counts(batch) -> dict[str, int]:
    """The scored tokens and the sequences of a batch: share_of_step's counts."""
    return {"answer": int((batch["targets"] != IGNORE_INDEX).sum()), "sequences": len(batch["input_ids"])}


class ChatTask(Task):
    """Next-token loss on the assistant's tokens of random conversations (drawn with replacement from the
    trainer's generator, so a resumed run draws the same ones). The loss is a mean over answer tokens, so a
    long answer counts more than a short one, as it would in one long text."""

    default_metric = ("val_loss", "min")

    def __init__(self, examples: dict[str, list[dict]], pad_id: int, peft_controller=None):
        for split in self.splits:
            if not examples.get(split):
                raise DataError(f"the {split} split has no conversations; it needs at least one")
        self.examples, self.pad_id = examples, pad_id
        self.peft_controller = peft_controller  # AdaLoRA's: a loss penalty and a rank update per step
        self.step_counts = None

    def get_batch(self, split, batch_size, generator):
        pool = self.examples[split]
        picks = torch.randint(len(pool), (batch_size,), generator=generator).tolist()
        batch = pad_conversations([pool[i] for i in picks], self.pad_id)
        if split == "train":  # the whole step's batch: every process draws all of it, then keeps its slice
            self.step_counts = answer_counts(batch)
        return batch

    def loss(self, model, batch):
        _, loss = model(batch["input_ids"], targets=batch["targets"])  # mean over this slice's answer tokens
        if model.training:  # slices of a step (accumulation, DDP) hold different numbers of answer tokens
            loss = loss * share_of_step(answer_counts(batch), self.step_counts, "answer")
            if self.peft_controller is not None:
                loss = loss + self.peft_controller.penalty(model)
        return loss

    def on_gradients(self, model, step):
        if self.peft_controller is not None:
            self.peft_controller.update(model, step)

    def count_tokens(self, batch):
        return int((batch["input_ids"] != self.pad_id).sum())

    @torch.no_grad()
    def evaluate(self, model, cfg, device):
        """train_loss on eval_iters random batches (a fixed seed); val_loss over the whole validation split, in
        order: exact and repeatable. Both are means per answer token."""
        generator = torch.Generator().manual_seed(0)
        train_batches = [self.get_batch("train", cfg.batch_size, generator) for _ in range(cfg.eval_iters)]
        val = self.examples["val"]
        val_batches = [pad_conversations(val[i:i + cfg.batch_size], self.pad_id)
                       for i in range(0, len(val), cfg.batch_size)]
        return {"train_loss": answer_loss(model, train_batches, device),
                "val_loss": answer_loss(model, val_batches, device)}


def answer_loss(model, batches, device) -> float:
    """The mean next-token loss over every answer token of the batches."""
    total, count = 0.0, 0
    for batch in batches:
        batch = to_device(batch, device)
        logits, _ = model(batch["input_ids"])  # (B, T, vocab_size)
        total += F.cross_entropy(logits.flatten(0, 1).float(), batch["targets"].flatten(),
                                 ignore_index=IGNORE_INDEX, reduction="sum").item()
        count += answer_counts(batch)["answer"]
    return total / count


@torch.no_grad()
def greedy_answer(model, tokenizer, question: str, end_ids, max_new_tokens: int) -> str:
    """The greedy answer of a chat model to one user message, up to its end-of-turn token (finetune.py predict)."""
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    return greedy_reply(model, tokenizer, ids, end_ids, max_new_tokens)


def greedy_reply(model, tokenizer, prompt_ids: list[int], end_ids, max_new_tokens: int) -> str:
    """The text a chat model writes greedily after prompt_ids (a rendered conversation), up to its end-of-turn
    token, which is left out."""
    out = model.generate(torch.tensor([prompt_ids]), max_new_tokens, temperature=0.0, eos_token_ids=end_ids)
    answer = out[0, len(prompt_ids):].tolist()  # (1, T + new) -> the new ids
    cut = next((i for i, token in enumerate(answer) if token in end_ids), len(answer))
    return tokenizer.decode(answer[:cut])
