"""What a worker does with one chat request: the conversation rendered by the model's own chat template, checked
against the context, and answered token by token until the end-of-turn token, a stop string or max_tokens.

    chat_prompt(...)   messages -> prompt ids; too long: refused with the numbers (400), or, with truncate, the
                       oldest turns dropped (the system message and the last message are always kept)
    run_chat(...)      the events of one answer, handed to the event loop:
                           start  {"prompt_tokens", "sources"}     once the prompt is known to fit
                           delta  {"text"}                         each piece of text (streaming only)
                           done   {"text", "finish_reason", "prompt_tokens", "completion_tokens", "sources"}
                       finish_reason: "stop" (the end-of-turn token, or a stop string, which the text leaves out),
                       "length" (max_tokens), or minilm's "timeout" / "shutdown" / "cancelled".

Retrieval-augmented answers plug in here: the Service may hold a retriever, retrieve(messages) -> (messages,
sources), called in the worker before the prompt is rendered; it returns the conversation to answer (e.g. with
a system message holding the stored answers it found), or a string, the whole answer, sent without calling the
model (e.g. "I don't know" when nothing stored is close enough), and the sources to report, a list of JSON
objects such as {"id": "faq-12", "title": "the stored question", "text": "the stored answer", "score": 0.83}. The answer
carries them as an extra "sources" field (the chat page shows them); without a retriever there is none.
"""

import time

import torch

from tokenizer import ChatTemplateError

from .chat_stream import AnswerText
from .limits import RequestError
from .models import ServedModel


def chat_prompt(served: ServedModel, messages: list[dict], max_tokens: int | None, cap: int,
                truncate: bool) -> tuple[list[int], int]:
    """(prompt ids, the most tokens the answer may have). max_tokens None: the cap, within the context."""
    if max_tokens is not None and max_tokens > cap:
        raise RequestError(400, "max_tokens", f"max_tokens: {max_tokens} is more than this server's cap of {cap} "
                           "(--max_new_tokens); ask for fewer")
    context = served.context
    wanted = 1 if max_tokens is None else max_tokens  # an answer needs room for one token at least
    ids = render(served, messages)
    while len(ids) + wanted > context and truncate and _droppable(messages):
        messages = _drop_oldest_turn(messages)
        ids = render(served, messages)
    if len(ids) + wanted > context:
        asked = "" if max_tokens is None else f" + max_tokens {max_tokens}"
        raise RequestError(400, "messages", f"messages: the prompt is {len(ids)} tokens{asked}, more than the "
                           f"model's context of {context} tokens; shorten the conversation"
                           f"{' or lower max_tokens' if max_tokens else ''}, or send \"truncate\": true to drop "
                           "its oldest turns", code="context_length_exceeded")
    return ids, min(cap, context - len(ids)) if max_tokens is None else max_tokens


def render(served: ServedModel, messages: list[dict]) -> list[int]:
    """The conversation in the model's format, ending with the opening of the assistant's turn."""
    tokenizer = served.tokenizer
    for i, message in enumerate(messages):  # the template's markers are the model's, never the client's
        found = next((s for s in getattr(tokenizer, "special_tokens", {}) if s in message["content"]), None)
        if found is not None:
            raise RequestError(400, f"messages[{i}].content", f"messages[{i}].content: contains {found!r}, one of "
                               "the model's special tokens (it would forge a turn of the conversation); remove it")
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    except ChatTemplateError as err:  # e.g. a template that refuses this order of roles
        raise RequestError(400, "messages", f"messages: {err}") from None
    except ValueError as err:  # a character the vocabulary cannot encode
        raise RequestError(400, "messages", f"messages: {err}") from None


def _droppable(messages: list[dict]) -> bool:
    return len([m for m in messages if m["role"] != "system"]) > 1


def _drop_oldest_turn(messages: list[dict]) -> list[dict]:
    """Without the oldest message after the system message, and the assistant's answer to it, if it follows."""
    first = next(i for i, m in enumerate(messages) if m["role"] != "system")
    end = first + 1
    if messages[first]["role"] == "user" and end < len(messages) - 1 and messages[end]["role"] == "assistant":
        end += 1
    return messages[:first] + messages[end:]


def run_chat(served: ServedModel, job, cap: int, truncate_default: bool, count_token, retrieve=None) -> None:
    """Answer one chat request (see the module's docstring); stops as run_generation does on a client that left,
    the deadline or a shutdown."""
    request = job.request
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    truncate = truncate_default if request.truncate is None else request.truncate
    try:
        messages, sources = retrieve(messages) if retrieve is not None else (messages, None)
        if isinstance(messages, str):  # the retriever's own answer (it declines): no decoder
            return _answer_without_model(job, messages, sources)
        prompt, max_new = chat_prompt(served, messages, request.answer_limit(), cap, truncate)
    except RequestError as err:
        job.fail(err)
        return
    if job.on_event is not None:  # a stream: its first chunk can go out now
        job.emit("start", {"prompt_tokens": len(prompt), "sources": sources})
    generator = torch.Generator()
    generator.seed() if request.seed is None else generator.manual_seed(request.seed)
    answer, finish, n_tokens = AnswerText(served.tokenizer.decode_bytes, request.stop or []), "length", 0
    tokens = served.model.generate_tokens(torch.tensor([prompt]), max_new, request.temperature, None,
                                          None if request.top_p == 1 else request.top_p, generator=generator,
                                          eos_token_ids=served.end_ids)  # each (1, 1)
    for token in tokens:
        n_tokens += 1
        count_token()
        if int(token) in served.end_ids:
            finish = "stop"
            break
        _send(job, answer.add(int(token)))
        if answer.stopped:
            finish = "stop"
            break
        if (interrupted := _interrupted(job)) is not None:
            finish = interrupted
            break
    _send(job, answer.finish())
    job.finish({"text": answer.text, "finish_reason": finish, "prompt_tokens": len(prompt),
                "completion_tokens": n_tokens, "sources": sources})


def _answer_without_model(job, text: str, sources) -> None:
    if job.on_event is not None:
        job.emit("start", {"prompt_tokens": 0, "sources": sources})
    _send(job, text)
    job.finish({"text": text, "finish_reason": "stop", "prompt_tokens": 0, "completion_tokens": 0,
                "sources": sources})


def _interrupted(job) -> str | None:
    if job.cancelled:
        return "cancelled"
    if job.shutting_down:  # the server's --shutdown_timeout is nearly over: answer with what there is
        return "shutdown"
    if time.monotonic() > job.deadline:
        return "timeout"
    return None


def _send(job, text: str) -> None:
    if text and job.on_event is not None:
        job.emit("delta", {"text": text})
