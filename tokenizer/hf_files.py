"""A minilm tokenizer in the files transformers reads (for `python -m minilm.hf.export`).

    bpe         vocab.json + merges.txt (gpt2_files.py) + tokenizer_config.json  ->  GPT2Tokenizer
    bpe of a chat model, or another known split (SmolLM2's)
                tokenizer.json + tokenizer_config.json (hf_tokenizer_json.py)    ->  PreTrainedTokenizerFast
    wordpiece   vocab.txt + tokenizer_config.json                               ->  BertTokenizer
    char, sentencepiece                                                         ->  nothing (see below)

tokenizer_config.json names the class (so AutoTokenizer needs no other hint), the settings that class
takes, each special token in its role (eos_token, cls_token, ...) and `added_tokens_decoder`: the
special tokens with their ids, which transformers matches in the text before splitting it, as
``encode(text, special="allow")`` does. That is all transformers reads for the special tokens; the older
special_tokens_map.json would only repeat it, so it is not written. Nor is a tokenizer.json beside
GPT-2's or BERT's files: to transformers that name means a serialised `tokenizers` pipeline, read before
any other file (it is the whole tokenizer where it is written, for a chat model).

Files are written only when transformers' class gives the same ids as minilm: a character vocabulary
and a SentencePiece model have no GPT-2 or BERT tokenizer class, and a BPE with another
pre-tokenisation pattern or a WordPiece with another word-length limit would split differently.
``transformers_format_problem`` says why not, in words.
"""

import json
from pathlib import Path

from common.atomic import write_text_atomic

from .byte_level import GPT2_PATTERN
from .gpt2_files import write_gpt2_files
from .hf_tokenizer_json import TOKENIZERS_CLASS, pipeline_problem, write_tokenizer_json

TRANSFORMERS_CLASSES = {"bpe": "GPT2Tokenizer", "wordpiece": "BertTokenizer"}  # tokenizer kind -> class
GPT2_END_OF_TEXT = "<|endoftext|>"  # GPT-2 makes it bos, eos and unk at once
BERT_MAX_WORD_CHARS = 100  # BertTokenizer's limit, fixed: a longer word is [UNK]


def transformers_format_problem(tokenizer) -> str | None:
    """Why transformers cannot tokenize as ``tokenizer`` does from files, or None when it can."""
    if tokenizer.kind == "bpe":
        return None if is_plain_gpt2(tokenizer) else pipeline_problem(tokenizer)
    if tokenizer.kind == "wordpiece":
        if tokenizer.max_word_chars != BERT_MAX_WORD_CHARS:
            return (f"its words may have {tokenizer.max_word_chars} characters, but BertTokenizer always "
                    f"allows {BERT_MAX_WORD_CHARS}")
        return None
    if tokenizer.kind == "char":
        return "transformers has no tokenizer class for a character vocabulary"
    if tokenizer.kind == "sentencepiece":
        return ("GPT2Tokenizer and BertTokenizer cannot run a SentencePiece model (the sentencepiece package "
                "loads its sentencepiece.model file and gives the same ids)")
    return f"there is no transformers format for a {tokenizer.kind!r} tokenizer"


def write_transformers_tokenizer(tokenizer, folder, model_max_length: int) -> list[str]:
    """Write ``tokenizer`` into ``folder`` as transformers' files; returns their names.
    ``model_max_length``: the longest input the model takes (its block_size)."""
    problem = transformers_format_problem(tokenizer)
    if problem is not None:
        raise ValueError(f"cannot write the {tokenizer.kind} tokenizer for transformers: {problem}")
    if tokenizer.kind == "bpe" and not is_plain_gpt2(tokenizer):
        return write_tokenizer_json(tokenizer, folder, model_max_length, added_tokens_decoder(tokenizer.special_ids))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer.kind == "bpe":
        write_gpt2_files(folder / "vocab.json", folder / "merges.txt", tokenizer.byte_ids, tokenizer.merges,
                         tokenizer.special_tokens)
        names, config = ["vocab.json", "merges.txt"], gpt2_tokenizer_config(tokenizer)
    else:
        write_text_atomic(folder / "vocab.txt", "".join(piece + "\n" for piece in tokenizer.vocab))
        names, config = ["vocab.txt"], bert_tokenizer_config(tokenizer)
    config = {**config, "model_max_length": model_max_length,
              "added_tokens_decoder": added_tokens_decoder(tokenizer.special_ids)}
    write_text_atomic(folder / "tokenizer_config.json", json.dumps(config, ensure_ascii=False, indent=2) + "\n")
    return [*names, "tokenizer_config.json"]


def is_plain_gpt2(tokenizer) -> bool:
    """A BPE that GPT2Tokenizer's files describe whole: GPT-2's split, no roles, no chat template."""
    return tokenizer.pattern == GPT2_PATTERN and not tokenizer.roles and not tokenizer.chat_template


def transformers_class(tokenizer) -> str:
    """The transformers class that reads what write_transformers_tokenizer writes for ``tokenizer``."""
    if tokenizer.kind == "bpe" and not is_plain_gpt2(tokenizer):
        return TOKENIZERS_CLASS
    return TRANSFORMERS_CLASSES[tokenizer.kind]


def gpt2_tokenizer_config(tokenizer) -> dict:
    """GPT2Tokenizer's settings: byte-level BPE with no space added in front, <|endoftext|> in every role."""
    end_of_text = GPT2_END_OF_TEXT if GPT2_END_OF_TEXT in tokenizer.special_tokens else None
    # None, not a missing key: GPT2Tokenizer would otherwise add <|endoftext|> as a new id
    return {"tokenizer_class": TRANSFORMERS_CLASSES["bpe"], "add_prefix_space": False, "errors": "replace",
            "bos_token": end_of_text, "eos_token": end_of_text, "unk_token": end_of_text, "pad_token": None}


def bert_tokenizer_config(tokenizer) -> dict:
    """BertTokenizer's settings: the basic tokenizer's choices, each special token in its role."""
    roles = {f"{role}_token": piece for role, piece in tokenizer.special_tokens.items()}  # pad -> pad_token, ...
    return {"tokenizer_class": TRANSFORMERS_CLASSES["wordpiece"], "do_lower_case": tokenizer.lowercase,
            "strip_accents": tokenizer.strip_accents, "tokenize_chinese_chars": True, **roles}


def added_tokens_decoder(special_ids: dict[str, int]) -> dict[str, dict]:
    """transformers' entry for each special token: matched exactly, as it is, never split."""
    return {str(token_id): {"content": token, "lstrip": False, "rstrip": False, "normalized": False,
                            "single_word": False, "special": True}
            for token, token_id in sorted(special_ids.items(), key=lambda item: item[1])}
