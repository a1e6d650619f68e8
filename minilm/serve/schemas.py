"""The JSON each endpoint reads and writes, as pydantic models: FastAPI validates every request against
them (a wrong type or a missing field is a 422 naming it) and /openapi.json and /docs are drawn from them.

Strict: a number sent as a string ("0.8") or a string as a number is refused rather than guessed at, and
an unknown field is an error (a misspelled "temprature" would otherwise be ignored in silence).
The limits that depend on the server's flags (--max_texts, --max_new_tokens, ...) are checked after
validation, in service.py, with the same kind of message.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

MAX_TEMPERATURE = 2.0  # above it the next-token distribution is close to uniform: noise, not text
MAX_FILL_TOP_K = 50


def _whole_characters(value):
    """A JSON string may escape half of a UTF-16 surrogate pair ("\\ud800") alone: that is no character,
    and no tokenizer can encode it. Refused in every string of every request, the same way (422)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise PydanticCustomError("lone_surrogate", "a lone surrogate (U+{code}) at character {at}, half of a "
                                      "UTF-16 pair: not a character; send the character whole",
                                      {"code": f"{ord(value[err.start]):04X}", "at": err.start}) from None
    return value


Text = Annotated[str, BeforeValidator(_whole_characters)]  # every string a request carries
Pair = Annotated[list[Text], Field(min_length=2, max_length=2, description="[text, text_b]")]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    model: Text | None = Field(None, description="a loaded model's name (GET /v1/models); default: the first "
                              "model that serves this endpoint")


class TruncatingRequest(Request):
    truncate: bool | None = Field(None, description="cut a text longer than the model's context instead of "
                                  "refusing it (default: the server's --truncate, off unless set)")


class GenerateRequest(TruncatingRequest):
    prompt: Text = Field(min_length=1)
    max_new_tokens: int = Field(64, ge=0, description="tokens to add (the server caps it: --max_new_tokens)")
    temperature: float = Field(0.8, ge=0, le=MAX_TEMPERATURE, allow_inf_nan=False, description="0 is greedy")
    top_k: int | None = Field(200, ge=1, description="sample among the k likeliest tokens (null: all)")
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False, description="nucleus sampling")
    seed: int | None = Field(None, ge=0, lt=2**63, description="the same seed gives the same text")
    stream: bool = Field(False, description="send tokens as server-sent events as they are sampled")


class GenerateResponse(BaseModel):
    model: str
    text: str  # the new text only, without the prompt
    tokens: int
    finish_reason: Literal["length", "timeout", "cancelled", "shutdown"]


class ClassifyRequest(TruncatingRequest):
    texts: list[Text | Pair] = Field(min_length=1, description="texts, or [text, text_b] pairs")


class Classification(BaseModel):
    label: str
    score: float  # the probability of that label
    probabilities: dict[str, float]


class ClassifyResponse(BaseModel):
    model: str
    results: list[Classification]


class TagRequest(TruncatingRequest):
    text: Text = Field(min_length=1, description="words split on spaces, each given one tag")


class TaggedWord(BaseModel):
    word: str
    tag: str


class Entity(BaseModel):
    type: str
    start: int  # word index, inclusive
    end: int  # word index, inclusive
    text: str


class TagResponse(BaseModel):
    model: str
    words: list[TaggedWord]
    entities: list[Entity]  # read off BIO tags (B-X, I-X, O); empty for other tag sets
    truncated: bool  # words past the context were left untagged


class FillMaskRequest(TruncatingRequest):
    text: Text = Field(min_length=1, description="text with one or more [MASK]")
    top_k: int = Field(5, ge=1, le=MAX_FILL_TOP_K)


class Filler(BaseModel):
    token: str
    score: float


class FillMaskResponse(BaseModel):
    model: str
    masks: list[list[Filler]]  # for each [MASK], in order, the top_k fillers


class EmbedRequest(TruncatingRequest):
    texts: list[Text] = Field(min_length=1)
    normalize: bool = Field(False, description="scale each vector to length 1 (dot product = cosine)")


class EmbedResponse(BaseModel):
    model: str
    dimensions: int
    embeddings: list[list[float]]


class ModelInfo(BaseModel):  # OpenAI's model object (id, object, created, owned_by), then minilm's fields
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    name: str
    kind: str
    family: str
    source: str
    endpoints: list[str]
    labels: list[str] | None
    context: int
    parameters: int
    load_seconds: float


class ModelList(BaseModel):  # OpenAI's list shape
    object: Literal["list"]
    data: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok"]
    models: int
    queue_depth: int


class ErrorBody(BaseModel):
    detail: str
    field: str | None

