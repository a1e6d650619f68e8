"""GGUF into minilm's Llama (minilm/gguf/load.py): a tiny random transformers LlamaForCausalLM is written
to GGUF here the way llama.cpp's converter writes one (its q and k rows reordered for llama.cpp's rotary
kernel, float32), loaded by minilm, and compared with transformers' logits."""

import gguf
import numpy as np
import pytest
import torch
from transformers import LlamaConfig as HFLlamaConfig
from transformers import LlamaForCausalLM

from common.gguf import GGUFError, read_gguf
from minilm.gguf import NAME_TABLE, is_gguf, llama_config, load_gguf, undo_rotary_permutation

TOL = 1e-5
TINY = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=64, rms_norm_eps=1e-5)
HF_TO_GGUF = {  # transformers' names -> llama.cpp's; {i}: the layer
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "model.layers.{i}.input_layernorm.weight": "blk.{i}.attn_norm.weight",
    "model.layers.{i}.self_attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "model.layers.{i}.self_attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "model.layers.{i}.self_attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "model.layers.{i}.self_attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.ffn_norm.weight",
    "model.layers.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "model.layers.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "model.layers.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
}


def llama_cpp_permute(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """What llama.cpp's converter does to q_proj and k_proj: in each head, the first half's row j and the
    second half's row j become neighbours (rows 2j and 2j + 1)."""
    rows = weight.shape[0]
    return weight.reshape(n_heads, 2, rows // n_heads // 2, -1).swapaxes(1, 2).reshape(weight.shape)


def gguf_name(hf_name: str) -> str:
    parts = hf_name.split(".")
    if parts[:2] == ["model", "layers"]:
        return HF_TO_GGUF["model.layers.{i}." + ".".join(parts[3:])].format(i=parts[2])
    return HF_TO_GGUF[hf_name]


def write_gguf(hf_model, path, architecture="llama", permute=True, extra_tensors=()):
    """hf_model as llama.cpp's converter would write it in float32 (the tied head is left out)."""
    config = hf_model.config
    writer = gguf.GGUFWriter(path, architecture)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_token_list([f"t{i}" for i in range(config.vocab_size)])
    for name, tensor in hf_model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        array = tensor.numpy().astype(np.float32)
        if permute and name.endswith("q_proj.weight"):
            array = llama_cpp_permute(array, config.num_attention_heads)
        elif permute and name.endswith("k_proj.weight"):
            array = llama_cpp_permute(array, config.num_key_value_heads)
        writer.add_tensor(gguf_name(name), array)
    for name, array in extra_tensors:
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def hf_llama(seed=0, **overrides) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(HFLlamaConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():  # norms away from 1, so a weight read into the wrong norm shows
        for name, param in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                param.uniform_(0.5, 1.5)
    return model


INPUTS = torch.tensor([[3, 14, 15, 92, 65, 35, 89, 79, 32, 38], [2, 71, 82, 81, 82, 84, 59, 0, 45, 23]])


@torch.no_grad()
def max_logit_diff(minilm_model, hf_model, ids=INPUTS) -> float:
    return (minilm_model(ids)[0] - hf_model(ids).logits).abs().max().item()


@pytest.mark.parametrize("shape", [
    dict(num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=True),  # GQA, tied, like SmolLM2
    dict(num_key_value_heads=4, rope_theta=500000.0, tie_word_embeddings=False),  # plain heads, untied
    dict(num_key_value_heads=1, rope_theta=100000.0, tie_word_embeddings=True),  # one key/value head
], ids=["gqa-tied", "mha-untied", "mqa-tied"])
def test_logits_equal_transformers_on_the_same_weights(tmp_path, shape):
    hf_model = hf_llama(**shape)
    model = load_gguf(write_gguf(hf_model, tmp_path / "tiny.gguf"))
    assert max_logit_diff(model, hf_model) <= TOL


def test_the_config_comes_from_the_metadata(tmp_path):
    hf_model = hf_llama(num_key_value_heads=2, rope_theta=500000.0, tie_word_embeddings=False)
    config = llama_config(read_gguf(write_gguf(hf_model, tmp_path / "tiny.gguf")))
    assert (config.vocab_size, config.n_embd, config.n_layer, config.n_head, config.n_kv_head, config.n_inner,
            config.block_size, config.rope_theta, config.tie_word_embeddings) == \
        (97, 64, 2, 4, 2, 96, 64, 500000.0, False)
    assert config.layer_norm_eps == pytest.approx(1e-5)


def test_without_undoing_the_row_order_the_logits_differ(tmp_path):
    """The q/k reordering matters: a file written without it (as if llama.cpp had not reordered) loads into
    a model whose rotary pairs are wrong, so the check above can fail."""
    hf_model = hf_llama(num_key_value_heads=2)
    model = load_gguf(write_gguf(hf_model, tmp_path / "unpermuted.gguf", permute=False))
    assert max_logit_diff(model, hf_model) > 1e-3


def test_undoing_the_row_order_inverts_llama_cpps():
    weight = torch.arange(2 * 8 * 3, dtype=torch.float32).reshape(16, 3)  # 2 heads of 8 rows, 3 inputs
    stored = torch.from_numpy(llama_cpp_permute(weight.numpy(), n_heads=2))
    assert torch.equal(stored[:4, 0], torch.tensor([0.0, 12.0, 3.0, 15.0]))  # rows 0, 4, 1, 5: pairs (j, j + 4)
    assert torch.equal(undo_rotary_permutation(stored, n_heads=2), weight)


def test_every_row_of_the_name_table_is_a_parameter_of_the_model(tmp_path):
    hf_model = hf_llama(tie_word_embeddings=False)
    model = load_gguf(write_gguf(hf_model, tmp_path / "tiny.gguf"))
    names = {minilm.format(i=0) for _, minilm, _ in NAME_TABLE}
    assert names <= set(model.state_dict())
    assert {name for name in model.state_dict() if name.startswith(("blocks.0.", "wte", "ln_f", "lm_head"))} == names


# ---- files minilm cannot build: a GGUFError naming the file and the reason ---------------------

def expect_error(path, *words):
    with pytest.raises(GGUFError) as caught:
        load_gguf(path)
    assert all(word in str(caught.value) for word in (str(path), *words)), str(caught.value)


def test_another_architecture_is_named(tmp_path):
    expect_error(write_gguf(hf_llama(), tmp_path / "qwen3.gguf", architecture="qwen3"), "'qwen3'", "llama")


def test_a_tensor_minilm_does_not_have_is_named(tmp_path):
    extra = [("rope_freqs.weight", np.ones(8, dtype=np.float32))]  # Llama 3.1's rope scaling factors
    expect_error(write_gguf(hf_llama(), tmp_path / "extra.gguf", extra_tensors=extra), "rope_freqs.weight")


def test_a_missing_tensor_is_named(tmp_path):
    hf_model = hf_llama()
    del hf_model.model.layers[1].mlp.up_proj.weight  # the writer skips what the state_dict lacks
    expect_error(write_gguf(hf_model, tmp_path / "missing.gguf"), "blocks.1.mlp.up_proj.weight")


def test_metadata_that_disagrees_with_the_tensors_is_refused(tmp_path):
    hf_model = hf_llama()
    hf_model.config.intermediate_size = 128  # the metadata says 128, the tensors hold 96
    expect_error(write_gguf(hf_model, tmp_path / "disagree.gguf"), "blocks.0.mlp", "disagree")


def test_is_gguf_tells_a_gguf_file_by_its_first_bytes(tmp_path):
    path = write_gguf(hf_llama(), tmp_path / "renamed.bin")
    (tmp_path / "model.safetensors").write_bytes(b"\x08" + bytes(15))
    assert is_gguf(path) and not is_gguf(tmp_path / "model.safetensors") and not is_gguf(tmp_path)
