"""POST /v1/chat/completions in OpenAI's shapes: the request as pydantic validates it, the answer, the streamed
chunks, and the error body. Every OpenAI client (the `openai` package, curl scripts written for it, chat UIs)
speaks this protocol, so a model served here can stand in for theirs.

    request     {"model", "messages": [{"role", "content"}, ...], "max_tokens", "temperature", "top_p", "stop",
                 "n": 1, "seed", "stream", "stream_options": {"include_usage"}}  (+ minilm's "truncate")
    answer      {"id": "chatcmpl-...", "object": "chat.completion", "created", "model",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content"}, "finish_reason"}],
                 "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}   (+ "sources", when retrieved)
    a stream    data: {"object": "chat.completion.chunk", ..., "choices": [{"delta": {"role": "assistant"}}]}
                data: {... "choices": [{"delta": {"content": "Par"}}]}    one per piece of text, then
                data: {... "choices": [{"delta": {}, "finish_reason": "stop"}]}
                data: {... "choices": [], "usage": {...}}                  only when include_usage asks
                data: [DONE]
    an error    {"error": {"message", "type", "param", "code"}}   (OpenAI's; the other endpoints keep minilm's)

Strict as the other endpoints are: an unknown field is refused (as OpenAI refuses one), a number sent as a
string too. The OpenAI fields minilm cannot honour (n > 1, penalties, logprobs, tools) are refused by name
rather than ignored, so a client never believes it got what it asked for.
"""

import secrets
import time
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from .schemas import MAX_TEMPERATURE, Request, Text

ROLES = ("system", "user", "assistant")
MAX_STOP_STRINGS = 4  # as OpenAI allows


def _message_text(content):
    """OpenAI's content: a string, or a list of parts [{"type": "text", "text": "..."}] (joined here)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, dict) and part.get("type") == "text"
                                         and isinstance(part.get("text"), str) and len(part) == 2 for part in content):
        return "".join(part["text"] for part in content)
    raise PydanticCustomError("content_type", "content must be a string, or a list of text parts "
                              '[{"type": "text", "text": "..."}]; this model reads text only')


def _stop_list(stop):
    """OpenAI's stop: one string or a list of up to 4; always a list here."""
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) \
            or not 1 <= len(stop) <= MAX_STOP_STRINGS:
        raise PydanticCustomError("stop_type", f"stop must be a non-empty string or a list of 1 to "
                                  f"{MAX_STOP_STRINGS} non-empty strings")
    return stop


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal[ROLES] = Field(description="system, user or assistant")
    content: Annotated[Text, BeforeValidator(_message_text)]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool = Field(False, description="a last chunk with the token counts, before [DONE]")


class ChatCompletionRequest(Request):
    messages: list[ChatMessage] = Field(min_length=1, description="the conversation, oldest first")
    max_tokens: int | None = Field(None, ge=1, description="the longest answer, in tokens (default: the "
                                   "server's --max_new_tokens, within the model's context)")
    max_completion_tokens: int | None = Field(None, ge=1, description="OpenAI's newer name for max_tokens")
    temperature: float = Field(1.0, ge=0, le=MAX_TEMPERATURE, allow_inf_nan=False, description="0 is greedy")
    top_p: float = Field(1.0, gt=0, le=1, allow_inf_nan=False, description="nucleus sampling (1: off)")
    stop: Annotated[list[Text], BeforeValidator(_stop_list)] | None = Field(
        None, description="end the answer before any of these strings (it never contains them)")
    n: int = Field(1, description="answers per request: 1 only")
    seed: int | None = Field(None, ge=0, lt=2**63, description="the same seed gives the same answer")
    stream: bool = Field(False, description="send the answer as server-sent chunks while it is written")
    stream_options: StreamOptions | None = None
    user: Text | None = Field(None, description="the end user's id; accepted for compatibility, not used")
    presence_penalty: float = Field(0.0, description="0 only: minilm's sampler has no penalties")
    frequency_penalty: float = Field(0.0, description="0 only: minilm's sampler has no penalties")
    truncate: bool | None = Field(None, description="minilm's: drop the oldest turns when the conversation does "
                                  "not fit the context, instead of refusing it (default: the server's --truncate)")

    @field_validator("n")
    @classmethod
    def _one_answer(cls, n):
        if n != 1:
            raise PydanticCustomError("n_unsupported", "only n=1 is supported (one answer per request); send "
                                      "several requests for several answers")
        return n

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, value):
        if value != 0:
            raise PydanticCustomError("penalty_unsupported", "only 0 is supported: minilm's sampler has no "
                                      "presence or frequency penalty")
        return value

    def answer_limit(self) -> int | None:
        """max_tokens or max_completion_tokens, whichever was sent (both: refused by check_request)."""
        return self.max_tokens if self.max_tokens is not None else self.max_completion_tokens


def check_request(request: ChatCompletionRequest) -> str | None:
    """What the field validators cannot see alone: (param, message) of the first problem, or None."""
    if request.max_tokens is not None and request.max_completion_tokens is not None:
        return "max_tokens", "send max_tokens or max_completion_tokens, not both"
    if request.stream_options is not None and not request.stream:
        return "stream_options", "stream_options is only allowed with \"stream\": true"
    if not any(message.role == "user" for message in request.messages):
        return "messages", "messages: no user message; the model answers the user, so send at least one"
    return None


# ---------------------------------------------------------------------------------------- answers

def completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def usage(result: dict) -> dict:
    return {"prompt_tokens": result["prompt_tokens"], "completion_tokens": result["completion_tokens"],
            "total_tokens": result["prompt_tokens"] + result["completion_tokens"]}


def completion(model: str, result: dict) -> dict:
    """The whole answer (stream false). result: what the worker returned (minilm/serve/chat_job.py)."""
    body = {"id": completion_id(), "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result["text"]},
                         "logprobs": None, "finish_reason": result["finish_reason"]}],
            "usage": usage(result)}
    if result.get("sources") is not None:
        body["sources"] = result["sources"]
    return body


class ChunkWriter:
    """The chunks of one streamed answer: they share an id, a creation time and the model's name."""

    def __init__(self, model: str, include_usage: bool):
        self.model, self.include_usage = model, include_usage
        self.id, self.created = completion_id(), int(time.time())

    def chunk(self, delta: dict, finish_reason: str | None = None, **extra) -> dict:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], **extra}
        if self.include_usage:
            body["usage"] = None  # as OpenAI: every chunk has the key, only the last one a value
        return body

    def first(self, sources) -> dict:
        return self.chunk({"role": "assistant", "content": ""}, **({} if sources is None else {"sources": sources}))

    def usage_chunk(self, result: dict) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage(result)}


# ---------------------------------------------------------------------------------------- errors

ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 413: "request_too_large"}


def error_body(status: int, message: str, param: str | None, code: str | None = None) -> dict:
    """OpenAI's error: a client's mistake is an invalid_request_error; the server's own trouble a server_error."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code or ERROR_CODES.get(status)}}


def field_errors(errors: list[dict]) -> tuple[str, str]:
    """pydantic's errors as one message and the first field, each named whole ("messages[0].role")."""
    by_param = {}
    for e in errors:
        by_param.setdefault(_param(e["loc"]), e["msg"])
    return "; ".join(f"{param}: {msg}" for param, msg in by_param.items()), next(iter(by_param))


def _param(loc) -> str:
    """("body", "messages", 0, "role") -> "messages[0].role"; a union member's name ("list[...]") is left out."""
    name = ""
    for part in loc[1:]:
        if isinstance(part, int):
            name += f"[{part}]"
        elif "[" not in part:
            name = f"{name}.{part}" if name else part
    return name or "body"


def openai_status(status: int) -> int:
    """OpenAI answers every invalid request 400 (its clients raise BadRequestError); minilm's 422 becomes 400."""
    return 400 if status == 422 else status
