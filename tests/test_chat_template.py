"""The chat template: SmolLM2's own template, read from its GGUF file, renders conversations to exactly the
text and ids of transformers' apply_chat_template (its default system prompt, the generation prompt); other
templates render as transformers renders them (the same Jinja settings); and what cannot work is a clear
ChatTemplateError: no template, invalid Jinja, a template's own refusal, bad messages, the sandbox's limits."""

import pytest
from smollm2_reference import gguf_path, transformers_tokenizer

from common.errors import UserError
from tokenizer import BPETokenizer
from tokenizer.chat_template import ChatTemplateError, render_chat
from tokenizer.gguf_vocab import tokenizer_from_gguf

USER = {"role": "user", "content": "What is the capital of France?"}
CONVERSATIONS = {
    "one user message (default system prompt)": [USER],
    "own system prompt": [{"role": "system", "content": "You answer in one word."}, USER],
    "several turns": [USER, {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Italy?"}],
    "specials, newlines, unicode in content": [
        {"role": "user", "content": "Line 1\n\n  Line 2 — 東京 🤖 <|im_end|> 12345"}],
}
# A template whose text depends on trim_blocks and lstrip_blocks (the newline after a tag, the indentation
# before one), {% break %} and tojson: rendered as transformers renders it only with its settings.
SETTINGS_TEMPLATE = """{% for m in messages %}
    {% if m.role == 'system' %}
{% break %}
    {% endif %}
  {{ m.role | upper }}: {{ m.content | tojson }}
{% endfor %}
{% if add_generation_prompt %}ASSISTANT:{% endif %}"""


@pytest.fixture(scope="module")
def smollm2() -> BPETokenizer:
    return tokenizer_from_gguf(gguf_path())


@pytest.mark.parametrize("generation_prompt", [True, False])
@pytest.mark.parametrize("name", CONVERSATIONS)
def test_smollm2_template_gives_transformers_text_and_ids(smollm2, name, generation_prompt):
    messages = CONVERSATIONS[name]
    reference = transformers_tokenizer()
    assert smollm2.render_chat(messages, generation_prompt) == \
        reference.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)
    assert smollm2.apply_chat_template(messages, generation_prompt) == \
        reference.apply_chat_template(messages, add_generation_prompt=generation_prompt)["input_ids"]


def test_default_system_prompt_comes_first_only_without_a_system_message(smollm2):
    default = smollm2.render_chat([USER])
    own = smollm2.render_chat(CONVERSATIONS["own system prompt"])
    assert default.startswith("<|im_start|>system\n") and "SmolLM" in default and "SmolLM" not in own


def test_generation_prompt_opens_the_assistants_turn(smollm2):
    with_prompt, without = smollm2.render_chat([USER], True), smollm2.render_chat([USER], False)
    assert with_prompt == without + "<|im_start|>assistant\n"


def test_jinja_settings_render_as_transformers_renders():
    messages = [{"role": "user", "content": 'say "hi" <b>'}, {"role": "system", "content": "unseen"}, USER]
    assert render_chat(SETTINGS_TEMPLATE, messages, True) == transformers_tokenizer().apply_chat_template(
        messages, chat_template=SETTINGS_TEMPLATE, add_generation_prompt=True, tokenize=False)


def test_tokenizer_without_template_is_a_clear_error():
    tok = BPETokenizer.train("hello hello world", vocab_size=267)
    with pytest.raises(ChatTemplateError, match="no chat template"):
        tok.apply_chat_template([USER])


def test_chat_template_error_is_a_user_error():
    assert issubclass(ChatTemplateError, UserError)


def test_invalid_jinja_is_a_clear_error():
    with pytest.raises(ChatTemplateError, match="not valid Jinja"):
        render_chat("{% for message in messages %}", [USER])


def test_template_refusal_names_its_reason():
    template = ("{% if messages[0]['role'] != 'system' %}"
                "{{ raise_exception('a system message must come first') }}{% endif %}")
    with pytest.raises(ChatTemplateError, match="a system message must come first"):
        render_chat(template, [USER])


@pytest.mark.parametrize("messages", [USER, [{"role": "user"}], [{"role": "user", "content": 3}], ["hello"]])
def test_malformed_messages_are_refused(messages):
    with pytest.raises(ChatTemplateError, match="message"):
        render_chat("{{ messages }}", messages)


@pytest.mark.parametrize("template", ["{{ ''.__class__.__mro__[1].__subclasses__() }}",  # Python's internals
                                      "{{ messages.append(messages[0]) }}"])  # changing its input
def test_sandbox_stops_what_a_template_must_not_do(template):
    with pytest.raises(ChatTemplateError):
        render_chat(template, [USER])
