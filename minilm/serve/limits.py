"""What the service refuses, and how it says so: a RequestError carries the HTTP status, the field at
fault and a message that says how to fix the request. The app turns it into

    HTTP 4xx/5xx   {"detail": "texts[2]: 700 tokens, more than the model's context of 512; ...", "field": "texts[2]"}

Nothing a client sends should reach a 500: each check below runs before the model sees the input.
"""


class RequestError(Exception):
    def __init__(self, status: int, field: str | None, message: str, headers: dict | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.field, self.message, self.headers = status, field, message, headers
        self.code = code  # a machine-readable reason, for the OpenAI error shape (e.g. "context_length_exceeded")

    def body(self) -> dict:
        return {"detail": self.message, "field": self.field}


def check_text_count(n_texts: int, max_texts: int, field: str = "texts") -> None:
    if n_texts > max_texts:
        raise RequestError(422, field, f"{field}: {n_texts} texts, more than the {max_texts} one request may "
                           "carry (--max_texts); send them in several requests")


def check_text_chars(text: str, max_chars: int, field: str) -> None:
    if len(text) > max_chars:
        raise RequestError(422, field, f"{field}: {len(text):,} characters, more than {max_chars:,} "
                           "(--max_text_chars); shorten the text")


def check_max_new_tokens(asked: int, cap: int) -> None:
    if asked > cap:
        raise RequestError(422, "max_new_tokens", f"max_new_tokens: {asked} is more than this server's cap of "
                           f"{cap} (--max_new_tokens); ask for fewer")


def too_long(field: str, n_tokens: int, context: int) -> RequestError:
    """A text whose tokens do not fit the model's context, when truncation is off (the default)."""
    return RequestError(422, field, f"{field}: {n_tokens} tokens, more than the model's context of {context}; "
                        'shorten it, or send "truncate": true to cut it to the context')


def fit_prompt(ids: list[int], context: int, truncate: bool, field: str = "prompt") -> list[int]:
    """A prompt that fits the context; cut from the front when truncating, since generation continues the end."""
    if len(ids) <= context:
        return ids
    if not truncate:
        raise too_long(field, len(ids), context)
    return ids[-context:]
