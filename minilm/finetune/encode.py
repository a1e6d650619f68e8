"""Fine-tuning examples to token ids, for BERT ("bert") and GPT ("gpt") backbones.

Text classification:
    bert   [CLS] text [SEP] (text_b [SEP])        token_type_ids 0 for text, 1 for text_b
    gpt    text (\\n text_b)                      the head reads the last real token
Tagging, one label per word, put on a single sub-word and the others ignored (-100):
    bert   [CLS] w1 w2 ... [SEP]   label on each word's FIRST sub-word: it sees the whole word anyway
    gpt    w1 " w2" ...            label on each word's LAST sub-word: causal attention means only
                                   the last piece has seen the whole word

Library, not data preparation: fine-tuning (finetune.py), compression (python -m minilm.compress) and the
service (minilm/serve/encode.py) all encode through it, so a text becomes the same ids everywhere. The
examples come from data/finetune_data.py (TextExample, TaggedSentence, LabelMap), read here only through
their fields (.text, .text_b, .label; .words, .tags) and LabelMap.id.
"""

from common.errors import DataError


class EncodingError(DataError):
    """A text that the backbone's tokenizer cannot turn into model inputs; the message says why."""


IGNORE_INDEX = -100  # a position with this label is left out of the loss (minilm.losses uses the same)
FAMILIES = ("bert", "gpt")


def encode_text(tokenizer, family: str, text: str, text_b: str | None, max_length: int) -> dict[str, list[int]]:
    """Model inputs for one (text, text_b) pair, cut to max_length tokens."""
    if family == "bert":
        _require_bert_tokenizer(tokenizer)
        encoded = tokenizer.encode_plus(text, text_b, max_length=max_length, truncation=True)
        return {"input_ids": encoded["input_ids"], "token_type_ids": encoded["token_type_ids"]}
    ids = tokenizer.encode(text) + (tokenizer.encode("\n" + text_b) if text_b is not None else [])
    ids = ids[:max_length]
    if not ids:
        raise EncodingError(f"text {text!r} encodes to no tokens; a GPT classifier needs at least one")
    return {"input_ids": ids, "token_type_ids": [0] * len(ids)}


def encode_text_examples(examples: list, tokenizer, family: str, label_map,
                         max_length: int, split: str) -> list[dict]:
    """Each example's inputs and its label id (an unknown label is an error naming the split)."""
    encoded = []
    for number, example in enumerate(examples, start=1):
        item = encode_text(tokenizer, family, example.text, example.text_b, max_length)
        item["labels"] = label_map.id(example.label, where=f"{split} example {number}: ")
        encoded.append(item)
    return encoded


def encode_words(tokenizer, family: str, words: list[str], max_length: int) -> tuple[dict[str, list[int]], list[int]]:
    """Model inputs for a sentence of words, and the position of each word's labelled sub-word.

    Words that do not fit in max_length are dropped from the end (the positions list is shorter).
    """
    if family == "bert":
        _require_bert_tokenizer(tokenizer)
        ids, positions, budget = [tokenizer.cls_id], [], max_length - 1  # keep room for [SEP]
        for word in words:
            pieces = tokenizer.encode(word) or [tokenizer.unk_id]  # e.g. a lone control character
            if len(ids) + len(pieces) > budget:
                break
            positions.append(len(ids))  # the first sub-word
            ids.extend(pieces)
        ids.append(tokenizer.sep_id)
    else:
        ids, positions = [], []
        for i, word in enumerate(words):
            pieces = tokenizer.encode(word if i == 0 else " " + word)
            if not pieces or len(ids) + len(pieces) > max_length:
                break
            ids.extend(pieces)
            positions.append(len(ids) - 1)  # the last sub-word
    return {"input_ids": ids, "token_type_ids": [0] * len(ids)}, positions


def encode_tagged_sentences(sentences: list, tokenizer, family: str, label_map,
                            max_length: int, split: str) -> tuple[list[dict], int]:
    """Each sentence's inputs and per-token labels (IGNORE_INDEX off the labelled sub-words).

    Returns the encoded sentences and how many words were cut off by max_length."""
    encoded, n_cut = [], 0
    for number, sentence in enumerate(sentences, start=1):
        item, positions = encode_words(tokenizer, family, sentence.words, max_length)
        labels = [IGNORE_INDEX] * len(item["input_ids"])
        for position, tag in zip(positions, sentence.tags):
            labels[position] = label_map.id(tag, where=f"{split} sentence {number}: ")
        n_cut += len(sentence.words) - len(positions)
        if positions:
            item["labels"] = labels
            encoded.append(item)
    return encoded, n_cut


def _require_bert_tokenizer(tokenizer) -> None:
    if not all(hasattr(tokenizer, name) for name in ("encode_plus", "cls_id", "sep_id", "unk_id")):
        raise EncodingError(f"a BERT backbone needs a WordPiece tokenizer with [CLS]/[SEP]; got "
                                f"{type(tokenizer).__name__}; fine-tune a checkpoint that saved one")
