"""A byte-level BPE tokenizer from a GGUF file's metadata (SmolLM2's, for one).

A GGUF file (llama.cpp's format) carries the model's tokenizer as metadata keys, not as files:

    tokenizer.ggml.model         "gpt2": byte-level BPE, GPT-2's kind (the only kind read here)
    tokenizer.ggml.pre           the pre-tokenizer's name, e.g. "smollm" (byte_level.PRE_TOKENIZERS)
    tokenizer.ggml.tokens        id -> token string, in GPT-2's byte<->unicode spelling ("Ġworld")
    tokenizer.ggml.token_type    id -> 1 normal, 3 control (a special token such as <|im_end|>), ...
    tokenizer.ggml.merges        "left right", by priority
    tokenizer.ggml.bos_token_id, eos_token_id, unknown_token_id, padding_token_id    the roles
    tokenizer.chat_template      the chat model's Jinja template (chat_template.py)

``tokenizer_from_metadata`` turns those plain values into a BPETokenizer; ``tokenizer_from_gguf`` reads
them from a file with common/gguf.py. Anything it cannot do exactly as the model's own tokenizer does (a
pre-tokenizer it does not know, a BOS it should add, token types it does not handle) is an error, not a
guess: a wrong guess would give other ids with no error at all.
"""

from .base import TokenizerFileError
from .bpe import BPETokenizer

NORMAL, CONTROL = 1, 3  # llama.cpp's token types; the others: 2 unknown, 4 user-defined, 5 unused, 6 byte
ROLE_KEYS = {"bos_token": "bos_token_id", "eos_token": "eos_token_id", "unk_token": "unknown_token_id",
             "pad_token": "padding_token_id"}  # the names chat templates use -> tokenizer.ggml.<key>


def tokenizer_from_gguf(path) -> BPETokenizer:
    """The tokenizer stored in the GGUF file at ``path``."""
    from common.gguf import read_gguf  # the hand-written, bounds-checked reader
    return tokenizer_from_metadata(read_gguf(path).metadata, where=str(path))


def tokenizer_from_metadata(metadata: dict, where: str = "the GGUF metadata") -> BPETokenizer:
    """The tokenizer a GGUF file's metadata (key -> value: strings, ints, lists) describes."""
    model = metadata.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise TokenizerFileError(f"{where}: tokenizer.ggml.model is {model!r}; minilm builds only byte-level BPE "
                                 "tokenizers ('gpt2') from a GGUF file")
    tokens = list_of(metadata, "tokenizer.ggml.tokens", str, where)
    merges = list_of(metadata, "tokenizer.ggml.merges", str, where)
    types = list_of(metadata, "tokenizer.ggml.token_type", int, where)
    pre = metadata.get("tokenizer.ggml.pre")
    if not isinstance(pre, str):
        raise TokenizerFileError(f"{where}: no tokenizer.ggml.pre names the pre-tokenizer, and minilm does not "
                                 "guess one (a wrong split gives other ids)")
    if len(types) != len(tokens):
        raise TokenizerFileError(f"{where}: {len(tokens)} tokens but {len(types)} token types; the file is corrupt")
    others = sorted({t for t in types if t not in (NORMAL, CONTROL)})
    if others:
        raise TokenizerFileError(f"{where}: token types {others} present; minilm reads normal (1) and control (3) "
                                 "tokens only")
    for flag in ("add_bos_token", "add_eos_token"):
        if metadata.get(f"tokenizer.ggml.{flag}"):
            raise TokenizerFileError(f"{where}: tokenizer.ggml.{flag} asks for a token minilm's BPE does not add")
    special_ids = [i for i, token_type in enumerate(types) if token_type == CONTROL]
    # a role given to an ordinary token is left out: only special tokens play roles (templates write them)
    roles = {role: metadata[f"tokenizer.ggml.{key}"] for role, key in ROLE_KEYS.items()
             if metadata.get(f"tokenizer.ggml.{key}") in special_ids}
    chat_template = metadata.get("tokenizer.chat_template")
    if chat_template is not None and not isinstance(chat_template, str):
        raise TokenizerFileError(f"{where}: tokenizer.chat_template is not a string; the file is corrupt")
    return BPETokenizer.from_token_list(tokens, merges, pre, special_ids, roles, chat_template, where=where)


def list_of(metadata: dict, key: str, item_type: type, where) -> list:
    value = metadata.get(key)
    if not isinstance(value, list) or not all(isinstance(item, item_type) for item in value):
        raise TokenizerFileError(f"{where}: {key} is missing or not a list of {item_type.__name__}; a GGUF file of a "
                                 "byte-level BPE model has it")
    return value

