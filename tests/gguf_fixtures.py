"""Tiny Llamas written as GGUF files by the `gguf` package's writer (the test-only reference), for the tests of
the commands that read a .gguf: no download, a second to write.

    write_llama_gguf(path, config, tokens, types, merges, eos=None, template=None)
        a random Llama(config) (tied head) with a byte-level BPE in its metadata, the q and k rows in minilm's
        order (tests/test_gguf_load.py writes llama.cpp's order and checks the loader undoes it)
"""

import gguf
import torch

from minilm import Llama, LlamaConfig
from minilm.gguf import NAME_TABLE


def write_llama_gguf(path, config: LlamaConfig, tokens, types, merges, eos: int | None = None,
                     template: str | None = None):
    """Returns path. The model's weights come from torch's current random state (seed before calling)."""
    writer = gguf.GGUFWriter(path, "llama")
    for add, value in ((writer.add_context_length, config.block_size), (writer.add_embedding_length, config.n_embd),
                       (writer.add_block_count, config.n_layer), (writer.add_feed_forward_length, config.mlp_width),
                       (writer.add_head_count, config.n_head), (writer.add_head_count_kv, config.kv_heads),
                       (writer.add_layer_norm_rms_eps, config.layer_norm_eps), (writer.add_tokenizer_model, "gpt2"),
                       (writer.add_tokenizer_pre, "smollm"), (writer.add_token_list, tokens),
                       (writer.add_token_types, types), (writer.add_token_merges, merges)):
        add(value)
    if eos is not None:
        writer.add_eos_token_id(eos)
    if template is not None:
        writer.add_chat_template(template)
    gguf_names = {minilm_name: gguf_name for gguf_name, minilm_name, _ in NAME_TABLE}  # blocks.{i}.… -> blk.{i}.…
    for name, tensor in Llama(config).state_dict().items():
        if name != "lm_head.weight":  # tied: the file holds the embedding once
            layer = next((part for part in name.split(".") if part.isdigit()), "")
            writer.add_tensor(gguf_names[name.replace(f".{layer}.", ".{i}.", 1)].format(i=layer), tensor.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
