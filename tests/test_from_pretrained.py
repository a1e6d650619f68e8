"""minilm.from_pretrained picks the loader and the class from what the path holds: a Hugging Face folder
(config.json names the class) or a GGUF file (a Llama, through minilm.gguf)."""

import pytest
import torch

from common.errors import CheckpointError, MissingFileError
from minilm import GPT, Bert, BertConfig, GPTConfig, Llama, LlamaConfig, from_pretrained, save_pretrained
from minilm.gguf import NAME_TABLE, load_gguf

SHAPE = dict(vocab_size=40, block_size=32, n_layer=2, n_head=4, n_embd=16)


def write_gguf(model: Llama, path, more_metadata=lambda writer: None):
    """model's tensors under llama.cpp's names, with the llama.* keys minilm's loader reads (the q and k
    rows are not reordered: this file tests which loader runs, not the numbers); more_metadata(writer) may
    add keys (a tokenizer's)."""
    import gguf
    config, writer = model.config, gguf.GGUFWriter(path, "llama")
    writer.add_context_length(config.block_size)
    writer.add_embedding_length(config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_feed_forward_length(config.mlp_width)
    writer.add_head_count(config.n_head)
    writer.add_head_count_kv(config.kv_heads)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_layer_norm_rms_eps(config.layer_norm_eps)
    more_metadata(writer)
    names = {minilm: gguf_name for gguf_name, minilm, _ in NAME_TABLE}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # tied: llama.cpp writes the embedding once
        pattern = ".".join("{i}" if part.isdigit() else part for part in name.split("."))
        layer = next((part for part in name.split(".") if part.isdigit()), None)
        writer.add_tensor(names[pattern].format(i=layer), tensor.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    torch.manual_seed(0)
    model = Llama(LlamaConfig(**SHAPE, n_kv_head=2, tie_word_embeddings=True))
    return write_gguf(model, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_a_gguf_file_loads_as_the_llama_the_gguf_loader_builds(gguf_file):
    model, reference = from_pretrained(gguf_file), load_gguf(gguf_file)
    assert type(model) is Llama and not model.training
    assert all(torch.equal(tensor, reference.state_dict()[name]) for name, tensor in model.state_dict().items())


def test_a_gguf_file_asked_for_as_another_class_is_refused(gguf_file):
    with pytest.raises(TypeError, match="GGUF file, which holds a Llama-family model"):
        from_pretrained(gguf_file, Bert)


@pytest.mark.parametrize("model", [
    GPT(GPTConfig(**SHAPE)), Llama(LlamaConfig(**SHAPE, n_kv_head=2)), Bert(BertConfig(**SHAPE)),
], ids=["GPT", "Llama", "Bert"])
def test_a_folder_loads_as_the_class_its_config_json_names(tmp_path, model):
    save_pretrained(model, tmp_path)
    assert type(from_pretrained(tmp_path)) is type(model)


def test_a_file_that_is_not_gguf_is_refused_by_name(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"not a model at all, but long enough for a header")
    with pytest.raises(CheckpointError, match="not a GGUF file"):
        from_pretrained(path)


def test_a_missing_gguf_file_is_named(tmp_path):
    with pytest.raises(MissingFileError, match="no such GGUF file"):
        from_pretrained(tmp_path / "absent.gguf")
