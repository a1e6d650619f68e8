"""A chat model's conversation format: its chat template, rendered.

A chat model was fine-tuned on conversations written out in one exact format, and answers well only when
its prompt is written the same way. SmolLM2's format is ChatML: each message is

    <|im_start|>{role}\\n{content}<|im_end|>\\n

with a default system message first when the conversation has none, and, to ask for an answer, the opening
of the assistant's turn, "<|im_start|>assistant\\n", after which the model writes its message and ends it
with <|im_end|>. The format ships with the model as a Jinja template (a GGUF file's
``tokenizer.chat_template``; tokenizer_config.json's ``chat_template`` in a Hugging Face folder), so
``render_chat`` needs no knowledge of any one format: it renders the model's own template with the messages.
Encoding the text with its special tokens as ids (``BPETokenizer.apply_chat_template``) gives the prompt.

The template is code read from a file, so it runs in Jinja's sandbox: it can loop, test and join strings,
but cannot reach Python's internals (attributes starting with "_", a function's globals) or change the
messages it is given. The environment is set up as transformers sets up its own, because these settings
change the text a template renders: ``trim_blocks`` and ``lstrip_blocks`` drop the newline after a
{% tag %} and the indentation before one, ``{% break %}``/``{% continue %}`` work in loops, and templates
may call ``raise_exception(message)``, ``strftime_now(format)`` and the ``tojson`` filter.
"""

import functools
import json
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from common.errors import UserError


class ChatTemplateError(UserError, ValueError):
    """No chat template, a template that is not valid Jinja, or messages the template refuses."""


def render_chat(template: str | None, messages, add_generation_prompt: bool = True, **special_tokens) -> str:
    """The conversation ``messages`` ([{"role": ..., "content": ...}, ...]) as text, by ``template``.
    ``add_generation_prompt``: end with the opening of the assistant's turn. ``special_tokens``: the names
    templates may use, e.g. bos_token="<|im_start|>", eos_token="<|im_end|>"."""
    if not template:
        raise ChatTemplateError("this tokenizer has no chat template, so it cannot write a conversation in the "
                                "model's format; use a chat model (its GGUF file stores the template as "
                                "tokenizer.chat_template), or encode plain text instead")
    check_messages(messages)
    try:
        return compiled(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                         **special_tokens)
    except jinja2.TemplateError as err:  # raise_exception(...) in the template, or the sandbox saying no
        raise ChatTemplateError(f"the chat template cannot write these messages: {err}") from None


def check_messages(messages) -> None:
    """Messages must be a list of {"role": str, "content": str}: what every chat template reads."""
    if not isinstance(messages, (list, tuple)):
        raise ChatTemplateError("messages must be a list of {'role': ..., 'content': ...}, not "
                                f"{type(messages).__name__}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise ChatTemplateError(f"message {i} is {message!r}; each message must be a dict with a string 'role' "
                                    "(system, user, assistant) and a string 'content'")


@functools.lru_cache(maxsize=8)
def compiled(template: str) -> jinja2.Template:
    """``template`` compiled once (a chat renders it at every turn)."""
    try:
        return environment().from_string(template)
    except jinja2.TemplateSyntaxError as err:
        raise ChatTemplateError(f"the chat template is not valid Jinja (line {err.lineno}: {err.message})") from None


@functools.cache
def environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.filters["tojson"] = to_json
    return env


def raise_exception(message: str):
    """What a template calls to refuse its input, e.g. roles out of order."""
    raise jinja2.TemplateError(message)


def to_json(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    """JSON as json.dumps writes it: Jinja's own tojson would escape <, > and & for HTML."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
