"""A byte-level BPE as the `tokenizers` library's tokenizer.json, for a chat model exported to transformers.

GPT2Tokenizer's files (vocab.json + merges.txt, hf_files.py) can only say "GPT-2": its split, its
<|endoftext|>. A chat model such as SmolLM2 needs more, so it is written as the one file in which a
Hugging Face tokenizer spells out its whole pipeline, step by step:

    added_tokens    the special tokens, matched whole in the text before anything else (encode(special="allow"))
    normalizer      none: the text is taken as it is
    pre_tokenizer   the split: each pattern but GPT-2's a "Split" (matches and the text between them kept,
                    "Isolated"), then "ByteLevel", which maps bytes to GPT-2's stand-in characters and, with
                    use_regex, splits by GPT-2's pattern itself (SmolLM2: Split \\p{N}, then ByteLevel)
    model           "BPE": the vocabulary (token string -> id) and the merges by priority; no unknown token,
                    so a byte the vocabulary lacks is dropped, as minilm drops it
    decoder         "ByteLevel": stand-in characters back to bytes, then UTF-8

tokenizer_config.json beside it names the roles (bos_token, eos_token, ...) and holds the chat template,
so AutoTokenizer.from_pretrained(folder) and its apply_chat_template give minilm's ids.
"""

import json
from pathlib import Path

from common.atomic import write_text_atomic

from .byte_level import GPT2_PATTERN, PRE_TOKENIZERS

TOKENIZERS_CLASS = "PreTrainedTokenizerFast"  # the transformers class that runs a tokenizer.json as written


def pipeline_problem(tokenizer) -> str | None:
    """Why ``tokenizer`` cannot be written as tokenizer.json, or None when it can."""
    if tokenizer.kind != "bpe":
        return f"tokenizer.json is written for byte-level BPE tokenizers, not {tokenizer.kind}"
    patterns = (tokenizer.pattern,) if isinstance(tokenizer.pattern, str) else tokenizer.pattern
    if patterns not in PRE_TOKENIZERS.values():
        return ("its pre-tokenisation pattern is not GPT-2's nor a known pre-tokenizer's (byte_level.PRE_TOKENIZERS), "
                "whose split transformers is known to repeat")
    return None


def write_tokenizer_json(tokenizer, folder, model_max_length: int, added_tokens_decoder: dict) -> list[str]:
    """Write tokenizer.json and tokenizer_config.json for ``tokenizer`` into ``folder``; their names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "tokenizer.json", json.dumps(pipeline(tokenizer), ensure_ascii=False) + "\n")
    role_tokens = {role: tokenizer.id_to_piece(token_id) for role, token_id in tokenizer.roles.items()}
    config = {"tokenizer_class": TOKENIZERS_CLASS, **role_tokens, "add_bos_token": False,
              "clean_up_tokenization_spaces": False, "model_max_length": model_max_length,
              "added_tokens_decoder": added_tokens_decoder}
    if tokenizer.chat_template:
        config["chat_template"] = tokenizer.chat_template
    write_text_atomic(folder / "tokenizer_config.json", json.dumps(config, ensure_ascii=False, indent=2) + "\n")
    return ["tokenizer.json", "tokenizer_config.json"]


def pipeline(tokenizer) -> dict:
    """tokenizer.json's content, step by step (see the module's docstring)."""
    vocab = {tokenizer.id_to_piece(token_id): token_id for token_id in range(tokenizer.vocab_size)}
    merges = [[tokenizer.id_to_piece(left), tokenizer.id_to_piece(right)] for left, right, _ in tokenizer.merges]
    added = [{"id": token_id, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for token, token_id in sorted(tokenizer.special_tokens.items(), key=lambda item: item[1])]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": pre_tokenizer(tokenizer.pattern), "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}


def pre_tokenizer(pattern) -> dict:
    """The split as `tokenizers` steps: a Split per pattern before GPT-2's, then ByteLevel splitting by it."""
    patterns = (pattern,) if isinstance(pattern, str) else tuple(pattern)
    assert patterns[-1] == GPT2_PATTERN, "every known pre-tokenizer ends with GPT-2's pattern"
    steps = [{"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": False}
             for p in patterns[:-1]]
    steps.append({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True})
    return steps[0] if len(steps) == 1 else {"type": "Sequence", "pretokenizers": steps}
