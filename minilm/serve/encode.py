"""A request's texts as model inputs, through the same encoders fine-tuning used (minilm/finetune/encode.py),
each checked against the model's context: a text that does not fit is refused, or cut when truncating.

    classify, embed   encode_text      BERT: [CLS] text [SEP] (text_b [SEP]);  GPT: text (\\n text_b)
    tag               encode_words     one position per word: its first sub-word (BERT), its last (GPT)
    fill-mask         [CLS] ... [MASK] ... [SEP], one position per [MASK]
    generate          tokenizer.encode(prompt)

Each text is encoded whole first, so a refusal can say how many tokens it has; a text that is cut is
encoded again at the context's length (the encoders keep [SEP] and cut a pair longest-first).
"""

import sys
from dataclasses import dataclass, field

import torch

from ..finetune.encode import EncodingError, encode_text, encode_words
from .limits import RequestError, fit_prompt, too_long
from .models import ServedModel

WHOLE = sys.maxsize  # "no length limit" for the encoders


@dataclass
class Encoded:
    input_ids: list[int]
    token_type_ids: list[int]
    positions: list[int] = field(default_factory=list)  # tag: each word's labelled sub-word; fill-mask: each [MASK]
    truncated: bool = False


def text_inputs(served: ServedModel, text: str, text_b: str | None, truncate: bool, field_name: str) -> Encoded:
    """classify and embed: one text (or pair) -> inputs that fit the context."""
    def encode(max_length):
        try:
            return encode_text(served.tokenizer, served.family, text, text_b, max_length)
        except (EncodingError, ValueError) as err:  # e.g. no tokens, or a character the vocabulary lacks
            raise RequestError(422, field_name, f"{field_name}: {err}") from None

    inputs = encode(WHOLE)
    n_tokens = len(inputs["input_ids"])
    if n_tokens <= served.context:
        return Encoded(inputs["input_ids"], inputs["token_type_ids"])
    if not truncate:
        raise too_long(field_name, n_tokens, served.context)
    inputs = encode(served.context)
    return Encoded(inputs["input_ids"], inputs["token_type_ids"], truncated=True)


def word_inputs(served: ServedModel, text: str, truncate: bool) -> tuple[Encoded, list[str]]:
    """tag: the words of text (split on spaces) -> inputs, with the words that fit the context."""
    words = text.split()
    if not words:
        raise RequestError(422, "text", "text: no words (only spaces); send at least one word")
    inputs, positions = _encode_words(served, words, WHOLE)
    if len(inputs["input_ids"]) > served.context:
        if not truncate:
            raise too_long("text", len(inputs["input_ids"]), served.context)
        inputs, positions = _encode_words(served, words, served.context)
    encoded = Encoded(inputs["input_ids"], inputs["token_type_ids"], positions, len(positions) < len(words))
    return encoded, words[:len(positions)]


def _encode_words(served, words, max_length):
    try:
        return encode_words(served.tokenizer, served.family, words, max_length)
    except ValueError as err:
        raise RequestError(422, "text", f"text: {err}") from None


def masked_inputs(served: ServedModel, text: str, truncate: bool) -> Encoded:
    """fill-mask: [CLS] text [SEP] with the mask id at each [MASK], whose positions are kept."""
    tokenizer = served.tokenizer
    mask_token = tokenizer.special_tokens["mask"]
    pieces = text.split(mask_token)  # the tokenizer itself would split "[MASK]" into "[", "mask", "]"
    if len(pieces) == 1:
        raise RequestError(422, "text", f"text: no {mask_token} in it; put {mask_token} where a word should be "
                           "filled in")
    ids, positions = [tokenizer.cls_id], []
    for i, piece in enumerate(pieces):
        ids += tokenizer.encode(piece)
        if i < len(pieces) - 1:
            positions.append(len(ids))
            ids.append(tokenizer.mask_id)
    ids.append(tokenizer.sep_id)
    truncated = len(ids) > served.context
    if truncated:
        if not truncate:
            raise too_long("text", len(ids), served.context)
        if positions[-1] >= served.context - 1:
            raise RequestError(422, "text", f"text: a {mask_token} lies past the model's context of "
                               f"{served.context} tokens; move it earlier or shorten the text")
        ids = ids[:served.context - 1] + [tokenizer.sep_id]
    return Encoded(ids, [0] * len(ids), positions, truncated)


def prompt_inputs(served: ServedModel, prompt: str, truncate: bool) -> list[int]:
    """generate: the prompt's ids, the end kept when it is cut (that is what the model continues)."""
    try:
        ids = served.tokenizer.encode(prompt)
    except ValueError as err:  # e.g. a character a character-level vocabulary lacks
        raise RequestError(422, "prompt", f"prompt: {err}") from None
    if not ids:
        raise RequestError(422, "prompt", "prompt: encodes to no tokens; give it at least one character")
    return fit_prompt(ids, served.context, truncate)


def pad_batch(batch: list[Encoded], pad_id: int):
    """Right-pad a batch to its longest input: input_ids, token_type_ids, attention_mask, each (B, T)."""
    length = max(len(item.input_ids) for item in batch)
    input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    token_type_ids = torch.zeros((len(batch), length), dtype=torch.long)
    attention_mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item.input_ids)
        input_ids[row, :n] = torch.tensor(item.input_ids)
        token_type_ids[row, :n] = torch.tensor(item.token_type_ids)
        attention_mask[row, :n] = 1
    return input_ids, token_type_ids, attention_mask
