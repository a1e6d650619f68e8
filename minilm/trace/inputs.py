"""The model and the one short input the shape trace runs: a fresh GPT, Llama or BERT of a library preset, with a
tiny character vocabulary (a fresh model has no tokenizer of its own), and the text made into the keyword
arguments of the model's forward, with the targets its loss needs."""

import string
from dataclasses import dataclass, field

import torch

from common.errors import ConfigError
from tokenizer import CharTokenizer, WordPieceTokenizer
from tokenizer.wordpiece import SPECIAL_TOKENS

from ..model import GPT, Bert, BertConfig, BertForPreTraining, GPTConfig, Llama, LlamaConfig
from ..model.losses import IGNORE_INDEX

DEFAULT_TEXT = "To be, or not to be, that is the question."
PRINTABLE = [chr(c) for c in range(32, 127)]  # the 95 printable ASCII characters, space first
BERT_CHARS = string.ascii_lowercase + string.digits + string.punctuation  # what an uncased word is spelled with


@dataclass
class TraceInput:
    text: str  # the text the ids were made from
    forward_kwargs: dict  # what model(...) is called with: input_ids (1, T), and targets or labels
    pieces: list[str]  # the tokens, as text
    notes: list[str] = field(default_factory=list)  # what was chosen or changed, for the reader


FRESH_MODELS = {"gpt": (GPTConfig, GPT), "llama": (LlamaConfig, Llama), "bert": (BertConfig, BertForPreTraining)}


def fresh_model(family: str, preset: str, seed: int = 0):
    """(a randomly initialised GPT, Llama or BertForPreTraining of its config's PRESETS[preset], in eval mode,
    a tokenizer for it, notes). BERT comes with its pretraining heads, so the trace ends in a loss."""
    config_cls, model_cls = FRESH_MODELS[family]
    if preset not in config_cls.PRESETS:
        raise ConfigError(f"--config {preset}: not a {config_cls.__name__} preset; choose one of "
                          f"{', '.join(config_cls.PRESETS)}")
    torch.manual_seed(seed)
    model = model_cls(config_cls.preset(preset)).eval()
    tokenizer = character_tokenizer(family)
    notes = [f"random weights ({config_cls.__name__}.PRESETS[{preset!r}], seed {seed}): the shapes are those of a "
             "trained model, the numbers are not",
             f"a fresh model has no tokenizer: the text is read with {describe_vocabulary(family)}"]
    return model, tokenizer, notes


def character_tokenizer(family: str):
    """GPT, Llama: one id per character (newline + printable ASCII: the 96 ids of the small presets).
    BERT: WordPiece with one piece per character ("t", and "##t" inside a word) after the 5 specials."""
    if family != "bert":
        return CharTokenizer(["\n", *PRINTABLE])
    pieces = [*SPECIAL_TOKENS.values(), *BERT_CHARS, *("##" + c for c in BERT_CHARS)]
    return WordPieceTokenizer(pieces, lowercase=True)


def describe_vocabulary(family: str) -> str:
    if family != "bert":
        return "a character vocabulary (96 ids: newline and the printable ASCII characters)"
    return (f"a character-level WordPiece vocabulary ({len(SPECIAL_TOKENS) + 2 * len(BERT_CHARS)} ids: "
            "[PAD] [UNK] [CLS] [SEP] [MASK], each letter, digit and punctuation mark, and ##each)")


def make_input(model, tokenizer, text: str | None) -> TraceInput:
    """One sequence (B = 1) of text (DEFAULT_TEXT when None), cut to the model's block_size."""
    if isinstance(model, GPT):
        return gpt_input(model, tokenizer, text)
    if isinstance(model, (Bert, BertForPreTraining)):
        return bert_input(model, tokenizer, text)
    raise ConfigError(f"the shape trace reads a GPT, a Llama or a Bert, not a {type(model).__name__}")


def gpt_input(model: GPT, tokenizer, text: str | None) -> TraceInput:
    text, ids, notes = encode(tokenizer, text)
    block_size = model.config.block_size
    if len(ids) > block_size:
        notes.append(f"the text is {len(ids)} tokens, longer than block_size {block_size}: "
                     f"cut to its first {block_size}")
        ids = ids[:block_size]
    # The next-token targets: the inputs shifted left by one. The last position has no next token in
    # the text, so its target is IGNORE_INDEX and it does not count in the loss.
    targets = ids[1:] + [IGNORE_INDEX]
    notes.append("loss: next-token cross-entropy; targets are the input ids shifted left by one "
                 "(the last position has no next token and is left out)")
    kwargs = {"input_ids": torch.tensor([ids]), "targets": torch.tensor([targets])}  # (1, T) each
    return TraceInput(text, kwargs, pieces_of(tokenizer, ids), notes)


def bert_input(model, tokenizer, text: str | None) -> TraceInput:
    text, ids, notes = encode(tokenizer, text)
    block_size = model.config.block_size
    n_special = 2 if hasattr(tokenizer, "cls_id") else 0  # [CLS] text [SEP], for a WordPiece tokenizer
    if len(ids) + n_special > block_size:
        notes.append(f"the text is {len(ids) + n_special} tokens with [CLS] and [SEP], longer than block_size "
                     f"{block_size}: cut to {block_size}")
        ids = ids[:block_size - n_special]
    if n_special:
        ids = [tokenizer.cls_id, *ids, tokenizer.sep_id]
    kwargs = {"token_type_ids": torch.zeros(1, len(ids), dtype=torch.long)}  # (1, T): all segment A
    if isinstance(model, BertForPreTraining) and hasattr(tokenizer, "mask_id"):
        ids, labels, note = mask_one_position(tokenizer, ids)
        kwargs["mlm_labels"] = torch.tensor([labels])  # (1, T)
        notes.append(note)
    else:
        notes.append("no loss: this is a BERT encoder without pretraining heads (a Hugging Face BertModel, or the "
                     "Bert inside a checkpoint, which is what open_model gives), so the trace ends at the pooler")
    kwargs["input_ids"] = torch.tensor([ids])  # (1, T)
    return TraceInput(text, kwargs, pieces_of(tokenizer, ids), notes)


def mask_one_position(tokenizer, ids: list[int]) -> tuple[list[int], list[int], str]:
    """(ids with the middle one replaced by [MASK], MLM labels, a note). The labels hold the original
    id at that position and IGNORE_INDEX elsewhere, as BERT's masking leaves them (losses.py)."""
    position = len(ids) // 2  # a piece of the text, never [CLS] or [SEP]
    labels = [IGNORE_INDEX] * len(ids)
    labels[position] = ids[position]
    note = (f"loss: masked-LM cross-entropy at one position: token {position} "
            f"({pieces_of(tokenizer, ids[position:position + 1])[0]!r}) is replaced by [MASK], to be predicted back")
    return ids[:position] + [tokenizer.mask_id] + ids[position + 1:], labels, note


def encode(tokenizer, text: str | None) -> tuple[str, list[int], list[str]]:
    """(the text used, its ids, notes). The default text loses the characters a character vocabulary lacks;
    a text the user gave must encode as it is."""
    notes = []
    if text is None:
        text = DEFAULT_TEXT
        missing = sorted({c for c in text if not encodes(tokenizer, c)})
        if missing:
            text = "".join(c for c in text if c not in missing)
            notes.append(f"the default text without the characters the vocabulary lacks ({''.join(missing)!r})")
    try:
        ids = tokenizer.encode(text)
    except ValueError as err:  # a character the vocabulary lacks
        raise ConfigError(f"--text: {err}") from None
    if not ids:
        raise ConfigError(f"--text {text!r} encodes to no tokens; give a few words")
    return text, ids, notes


def encodes(tokenizer, char: str) -> bool:
    try:
        tokenizer.encode(char)
    except ValueError:
        return False
    return True


def pieces_of(tokenizer, ids: list[int]) -> list[str]:
    """Each id as text: WordPiece's pieces ("##e") where it has them, else each id decoded alone."""
    if hasattr(tokenizer, "vocab") and isinstance(tokenizer.vocab, list):
        return [tokenizer.vocab[i] for i in ids]
    return [tokenizer.decode([i]) for i in ids]
