"""A conversation with a chat model (minilm/chat/): the template renders every turn, answers stream and join
the conversation, the oldest exchanges make room when the context is full, and `python -m minilm.chat`
turns mistakes into one error line. A tiny random Llama with a byte-level ChatML tokenizer stands in for a
real chat model; tests/test_smollm2.py talks to the real one."""

from pathlib import Path

import pytest
import torch

from common.errors import UserError, run_command
from minilm.chat import ChatSession, load_chat_model
from minilm.chat.__main__ import main as chat_main
from minilm.chat.load import ChatModel, end_ids
from minilm.model import Llama, LlamaConfig
from minilm.training.checkpoint import save_checkpoint
from tokenizer.byte_level import BYTE_TO_UNICODE
from tokenizer.gguf_vocab import tokenizer_from_metadata

REPO = Path(__file__).resolve().parents[1]
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|im_start|>", "<|im_end|>"]


def byte_tokenizer(template=CHATML):
    """256 byte tokens and ChatML's two special ones; no merges: one token per byte."""
    tokens = [BYTE_TO_UNICODE[b] for b in range(256)] + SPECIALS
    metadata = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.tokens": tokens,
                "tokenizer.ggml.merges": [], "tokenizer.ggml.token_type": [1] * 256 + [3, 3],
                "tokenizer.ggml.eos_token_id": 257}
    if template is not None:
        metadata["tokenizer.chat_template"] = template
    return tokenizer_from_metadata(metadata)


def tiny_chat(block_size=64) -> ChatModel:
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=258, block_size=block_size, n_layer=1, n_head=2, n_kv_head=1, n_embd=16,
                              n_inner=32)).eval()
    tokenizer = byte_tokenizer()
    return ChatModel(model, tokenizer, end_ids(tokenizer), "tiny")


def test_the_end_of_turn_ids_are_the_eos_and_im_end():
    tokenizer = byte_tokenizer()
    assert end_ids(tokenizer) == (257,)  # eos is <|im_end|> itself: listed once


def test_the_prompt_is_the_conversation_rendered_by_the_template():
    session = ChatSession(tiny_chat(block_size=512), system="Be brief.")
    session.messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                        {"role": "user", "content": "ok?"}]
    text = session.chat.tokenizer.decode(session.prompt_ids(max_new_tokens=8))
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
                    "yo<|im_end|>\n<|im_start|>user\nok?<|im_end|>\n<|im_start|>assistant\n")


def test_an_answer_streams_and_joins_the_conversation():
    session = ChatSession(tiny_chat())
    pieces = list(session.reply("hello", max_new_tokens=5))
    assert [m["role"] for m in session.messages] == ["user", "assistant"]
    assert session.messages[1]["content"] == "".join(pieces)


def test_the_answer_is_the_greedy_continuation_of_the_rendered_prompt():
    chat = tiny_chat()
    session = ChatSession(chat)
    prompt = torch.tensor([chat.tokenizer.apply_chat_template([{"role": "user", "content": "hey"}])])
    expected = chat.model.generate(prompt, 6, temperature=0, eos_token_ids=chat.end_ids)[0, prompt.size(1):]
    expected = [i for i in expected.tolist() if i not in chat.end_ids]
    answer = "".join(session.reply("hey", max_new_tokens=6))
    assert answer == chat.tokenizer.decode(expected)


def test_an_answer_stopped_early_keeps_what_was_written():
    session = ChatSession(tiny_chat())
    stream = session.reply("hello", max_new_tokens=10)
    first = next(stream)
    stream.close()  # what Ctrl-C does to the generator
    assert session.messages[-1] == {"role": "assistant", "content": first}


def test_the_oldest_exchanges_are_dropped_when_the_context_is_full():
    session = ChatSession(tiny_chat(block_size=70))
    for text in ("first message", "second message", "third"):
        list(session.reply(text, max_new_tokens=4))
    assert session.dropped >= 1
    assert session.messages[0]["content"] != "first message"
    assert len(session.prompt_ids(max_new_tokens=4)) <= 70 - 4


def test_a_message_longer_than_the_context_is_refused_with_the_numbers():
    session = ChatSession(tiny_chat(block_size=32))
    with pytest.raises(UserError, match="the model reads at most 24"):
        list(session.reply("x" * 100, max_new_tokens=8))


def fed_lengths(chat) -> list[int]:
    """Record how many tokens each forward pass of chat.model reads."""
    lengths, forward = [], chat.model.forward
    chat.model.forward = lambda input_ids, **kw: (lengths.append(input_ids.size(1)), forward(input_ids, **kw))[1]
    return lengths


def test_a_later_turn_reads_only_what_the_cache_lacks():
    chat = tiny_chat(block_size=512)
    session, lengths = ChatSession(chat), fed_lengths(chat)
    list(session.reply("hello there", max_new_tokens=6))
    first_prompt = lengths[0]
    second_prompt = chat.tokenizer.apply_chat_template(session.messages + [{"role": "user", "content": "and then?"}])
    lengths.clear()
    list(session.reply("and then?", max_new_tokens=6))
    assert lengths[0] <= len(second_prompt) - first_prompt  # the first turn's prompt is not read again
    assert session.cache.next_position == len(session.cached_ids)


def test_answers_with_the_reused_cache_equal_answers_without_it():
    texts = ("hello there", "and then?", "one more", "last")
    sessions = [ChatSession(tiny_chat(block_size=512)) for _ in range(2)]
    sessions[1].reuse_cache = False
    answers = [[("".join(session.reply(text, max_new_tokens=8))) for text in texts] for session in sessions]
    assert answers[0] == answers[1]


def test_an_answer_interrupted_inside_a_forward_pass_drops_the_cache():
    chat = tiny_chat(block_size=512)
    session = ChatSession(chat)
    list(session.reply("hello", max_new_tokens=4))
    forward = chat.model.forward
    chat.model.forward = lambda *a, **kw: (_ for _ in ()).throw(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        list(session.reply("again", max_new_tokens=4))
    assert session.cache is None  # some layers may have taken the new keys, others not
    chat.model.forward = forward
    list(session.reply("and now", max_new_tokens=4))
    assert session.cache.next_position == len(session.cached_ids) > 0


def test_reset_forgets_the_conversation():
    session = ChatSession(tiny_chat())
    list(session.reply("hello", max_new_tokens=3))
    session.reset()
    assert session.messages == [] and session.dropped == 0


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A minilm checkpoint of the tiny chat model, and one whose tokenizer has no chat template."""
    root = tmp_path_factory.mktemp("chat")
    chat = tiny_chat()
    config = {"model_class": "Llama", "model": chat.model.config.to_dict()}
    save_checkpoint(root / "chat", chat.model, config, None, lambda tmp: chat.tokenizer.save(tmp / "tokenizer"))
    plain = byte_tokenizer(template=None)
    save_checkpoint(root / "plain", chat.model, config, None, lambda tmp: plain.save(tmp / "tokenizer"))
    return root


def test_a_saved_chat_model_loads_with_its_template_and_end_token(checkpoints):
    chat = load_chat_model(checkpoints / "chat")
    assert isinstance(chat.model, Llama) and chat.end_ids == (257,)
    assert "".join(ChatSession(chat).reply("hi", max_new_tokens=3)) == \
        "".join(ChatSession(tiny_chat()).reply("hi", max_new_tokens=3))


def test_the_command_answers_one_prompt_and_exits(checkpoints, capsys):
    assert run_command(chat_main, ["--model", str(checkpoints / "chat"), "--prompt", "hi",
                                   "--max_new_tokens", "3"]) == 0
    expected = "".join(ChatSession(tiny_chat()).reply("hi", max_new_tokens=3))
    assert capsys.readouterr().out == expected + "\n"


@pytest.mark.parametrize("case, message", [
    ("plain", "has no chat template"), ("missing", "does not exist"), ("bad_tokens", "max_new_tokens must be")])
def test_mistakes_get_one_error_line_and_exit_2(checkpoints, capsys, case, message):
    model = {"plain": checkpoints / "plain", "missing": checkpoints / "nowhere"}.get(case, checkpoints / "chat")
    extra = ["--max_new_tokens", "0"] if case == "bad_tokens" else []
    assert run_command(chat_main, ["--model", str(model), "--prompt", "hi", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1
