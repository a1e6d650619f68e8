"""The references the SmolLM2 tokenizer tests compare with, built once per test process (transformers reads
the 98 MB GGUF through the gguf package, which takes half a minute on 2 cores), and a tiny GGUF writer.

- ``transformers_tokenizer()``: AutoTokenizer.from_pretrained(folder, gguf_file=name) on the smollm2-gguf
  asset. transformers 5.24 has no entry for the pre-tokenizer "smollm" in its GGUF table, so this one splits
  with GPT-2's pattern alone (as GPT2Tokenizer does).
- ``smollm2_pipeline()``: the same vocabulary and merges in a `tokenizers` pipeline with SmolLM2's own
  pre-tokenizer (what its tokenizer.json on the Hub holds and what llama.cpp's "smollm" does): each digit
  split off alone, then GPT-2's byte-level split.
"""

import functools

import gguf
from tokenizers import Tokenizer, pre_tokenizers

from data.assets import fetch
from tokenizer.byte_level import BYTE_TO_UNICODE


def gguf_path():
    return fetch("smollm2-gguf")


@functools.cache
def transformers_tokenizer():
    from transformers import AutoTokenizer
    path = gguf_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@functools.cache
def smollm2_pipeline() -> Tokenizer:
    pipeline = Tokenizer.from_str(transformers_tokenizer().backend_tokenizer.to_str())
    pipeline.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    return pipeline


def write_tiny_gguf(path, pre="smollm", merges=("a b", "ab c"), model="gpt2", template=None, **extra) -> None:
    """A GGUF file with only tokenizer metadata, written by gguf's own writer: <|end|> (control), the 256
    bytes in GPT-2's spelling, then one token per merge. ``extra``: more tokenizer.ggml.* keys (bool/int)."""
    tokens = ["<|end|>", *BYTE_TO_UNICODE.values()] + [merge.replace(" ", "") for merge in merges]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model(model)
    if pre is not None:
        writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([3] + [1] * (len(tokens) - 1))
    writer.add_token_merges(list(merges))
    writer.add_eos_token_id(0)
    if template is not None:
        writer.add_chat_template(template)
    for key, value in extra.items():
        if isinstance(value, bool):
            writer.add_bool(f"tokenizer.ggml.{key}", value)
        else:
            writer.add_uint32(f"tokenizer.ggml.{key}", value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
