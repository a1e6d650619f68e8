"""Instruction tuning (minilm/finetune/sft.py): which tokens of a conversation count in the loss, and the
ChatTask that trains on them. A byte-level ChatML tokenizer (one token per byte) makes the scored tokens
readable as text."""

import pytest
import torch

from common.errors import DataError
from minilm.chat.load import end_ids
from minilm.finetune.sft import ChatTask, encode_conversation, pad_conversations
from minilm.model import Llama, LlamaConfig
from minilm.model.losses import IGNORE_INDEX
from minilm.training.trainer import TrainConfig
from test_chat import byte_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

TOKENIZER = byte_tokenizer()
END_IDS = end_ids(TOKENIZER)
ORDER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is it?"},
         {"role": "assistant", "content": "It ships today."}]


def scored_text(example) -> list[str]:
    """The runs of target ids that count, each decoded: what the model is taught to write."""
    runs, current = [], []
    for target in example["targets"] + [IGNORE_INDEX]:
        if target != IGNORE_INDEX:
            current.append(target)
        elif current:
            runs.append(TOKENIZER.decode(current))
            current = []
    return runs


def test_only_the_answer_and_its_end_of_turn_token_are_scored():
    example = encode_conversation(TOKENIZER, ORDER, END_IDS, max_length=200)
    assert scored_text(example) == ["It ships today.<|im_end|>"]


def test_the_inputs_are_the_rendered_conversation_and_the_targets_the_next_ids():
    example = encode_conversation(TOKENIZER, ORDER, END_IDS, max_length=200)
    ids = TOKENIZER.apply_chat_template(ORDER, add_generation_prompt=False)
    assert example["input_ids"] == ids[:-1]
    assert all(t in (IGNORE_INDEX, ids[i + 1]) for i, t in enumerate(example["targets"]))


def test_every_assistant_turn_of_a_longer_conversation_is_scored():
    turns = ORDER + [{"role": "user", "content": "And the other?"}, {"role": "assistant", "content": "Tomorrow."}]
    example = encode_conversation(TOKENIZER, turns, END_IDS, max_length=300)
    assert scored_text(example) == ["It ships today.<|im_end|>", "Tomorrow.<|im_end|>"]


def test_a_conversation_without_an_answer_is_refused():
    with pytest.raises(DataError, match="no assistant message"):
        encode_conversation(TOKENIZER, ORDER[:2], END_IDS, max_length=200)


def test_a_conversation_longer_than_the_context_is_refused_with_the_numbers():
    n = len(TOKENIZER.apply_chat_template(ORDER, add_generation_prompt=False))
    with pytest.raises(DataError, match=f"is {n} tokens and the model reads at most 20"):
        encode_conversation(TOKENIZER, ORDER, END_IDS, max_length=20)


def test_a_template_whose_first_turns_change_with_later_ones_is_refused():
    last_differs = ("{% for m in messages %}{% if loop.last %}<|im_start|>{{ m['content'] }}{% else %}"
                    "{{ m['content'] }}{% endif %}{% endfor %}")
    with pytest.raises(DataError, match="cannot be found"):
        encode_conversation(byte_tokenizer(last_differs), ORDER, END_IDS, max_length=200)


def test_padding_adds_no_scored_target():
    short = encode_conversation(TOKENIZER, ORDER, END_IDS, max_length=200)
    long = encode_conversation(TOKENIZER, ORDER[:2] + [{"role": "assistant", "content": "It ships today, sir."}],
                               END_IDS, max_length=200)
    batch = pad_conversations([short, long], pad_id=0)
    assert batch["input_ids"].shape == batch["targets"].shape == (2, len(long["input_ids"]))
    assert int((batch["targets"][0] != IGNORE_INDEX).sum()) == sum(t != IGNORE_INDEX for t in short["targets"])


def tiny_task(n=6):
    answers = [f"Answer number {i}." for i in range(n)]
    examples = [encode_conversation(TOKENIZER, ORDER[:2] + [{"role": "assistant", "content": a}], END_IDS, 200)
                for a in answers]
    return ChatTask({"train": examples, "val": examples[:2]}, pad_id=0)


def test_the_loss_is_the_mean_over_answer_tokens_only():
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=258, block_size=128, n_layer=1, n_head=2, n_kv_head=1, n_embd=16,
                              n_inner=32)).eval()
    task = tiny_task()
    batch = task.get_batch("train", 3, torch.Generator().manual_seed(0))
    logits, _ = model(batch["input_ids"])
    counted = batch["targets"] != IGNORE_INDEX
    by_hand = torch.nn.functional.cross_entropy(logits[counted], batch["targets"][counted])
    torch.testing.assert_close(task.loss(model, batch), by_hand)
    metrics = task.evaluate(model, TrainConfig(batch_size=4, eval_iters=1), "cpu")
    assert set(metrics) == {"train_loss", "val_loss"}


def test_a_few_steps_on_the_answers_lower_the_validation_loss():
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=258, block_size=128, n_layer=1, n_head=2, n_kv_head=1, n_embd=32,
                              n_inner=64))
    task, cfg = tiny_task(), TrainConfig(batch_size=4, eval_iters=1)
    before = task.evaluate(model.eval(), cfg, "cpu")["val_loss"]
    optimizer, generator = torch.optim.AdamW(model.parameters(), lr=1e-2), torch.Generator().manual_seed(0)
    model.train()
    for _ in range(30):
        loss = task.loss(model, task.get_batch("train", 4, generator))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert task.evaluate(model.eval(), cfg, "cpu")["val_loss"] < before / 2
