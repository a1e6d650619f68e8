"""int8 weight-only decoding (minilm/compress/int8_gemv.py, Int8Linear's weight_only path) and `python -m
minilm.compress quantize` on models minilm did not write (a .gguf, a Hugging Face folder). Tiny random models:
seconds on a CPU."""

import copy
import shutil

import pytest
import torch
import torch.nn as nn
from transformers import LlamaConfig as HFLlamaConfig
from transformers import LlamaForCausalLM

from common.errors import run_command
from minilm import GPT, GPTConfig, Llama, LlamaConfig
from minilm.chat.load import load_chat_model
from minilm.compress import Int8Linear, quantize_model
from minilm.compress import int8_gemv
from minilm.compress.__main__ import main as compress
from minilm.gguf import load_gguf
from minilm.hf import from_pretrained
from minilm.training.checkpoint import load_checkpoint, saved_model
from serve_chat_fixtures import write_chat_gguf

HAS_COMPILER = shutil.which("gcc") is not None or shutil.which("cc") is not None


def int8_linear(in_features=96, out_features=40, bias=True, seed=0):
    torch.manual_seed(seed)
    linear = nn.Linear(in_features, out_features, bias=bias)
    return linear, Int8Linear.from_linear(linear, "weight_only")


# ----------------------------------------------------------------------------------- the int8 linear

@pytest.mark.parametrize("rows", [1, 3, int8_gemv.MAX_ROWS + 5])  # the kernel's path, and the dequantizing one
def test_weight_only_output_is_within_the_rounding_bound_of_float32(rows):
    """Each weight is off by at most half its row's step (scale_n / 2), so output n is off by at most
    scale_n / 2 · Σ_k |x_k|; 1e-5 more covers float32's own rounding of a sum of ~100 products of size ~1."""
    linear, module = int8_linear()
    x = torch.randn(rows, 96)
    with torch.no_grad():
        error = (module(x) - linear(x)).abs()  # (rows, out)
    bound = module.weight_scale[None, :] / 2 * x.abs().sum(-1, keepdim=True) + 1e-5
    assert (error <= bound).all()
    assert error.max() > 0  # it is a quantized product, not the float one


@pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler: Int8Linear dequantizes instead (tested above)")
def test_the_kernel_builds_where_there_is_a_c_compiler():
    assert int8_gemv.gemv_kernel() is not None


@pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler: Int8Linear dequantizes instead (tested above)")
@pytest.mark.parametrize("rows", [1, 2, int8_gemv.MAX_ROWS])
def test_the_kernel_gives_the_dequantized_product(rows):
    """y = (x · qᵀ) · s equals x · (q · s)ᵀ up to float32 rounding: the scale is one number per output."""
    _, module = int8_linear(in_features=200, out_features=70)  # K not a multiple of the vector width
    x = torch.randn(rows, 200)
    dequantized = x @ (module.weight.float() * module.weight_scale[:, None]).t()
    kernel = int8_gemv.linear_int8(x, module.weight, module.weight_scale)
    assert torch.allclose(kernel, dequantized, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler")
def test_decoding_shaped_input_takes_the_kernel_and_a_prompt_does_not(monkeypatch):
    calls = []
    real = int8_gemv.linear_int8
    monkeypatch.setattr("minilm.compress.int8_modules.linear_int8", lambda *a: calls.append(a[0].shape) or real(*a))
    _, module = int8_linear()
    with torch.no_grad():
        module(torch.randn(1, 1, 96))  # (B, T, C): one token
        module(torch.randn(1, int8_gemv.MAX_ROWS + 1, 96))  # a prompt
    assert calls == [(1, 96)]


def test_the_kernel_refuses_tensors_that_do_not_fit():
    _, module = int8_linear()
    with pytest.raises(ValueError, match="do not fit"):
        int8_gemv.linear_int8(torch.randn(1, 95), module.weight, module.weight_scale)


# ----------------------------------------------------------------------------------- whole models

def tiny_llama(seed=0, tie=True) -> Llama:
    torch.manual_seed(seed)
    return Llama(LlamaConfig(vocab_size=96, block_size=64, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, n_inner=128,
                             tie_word_embeddings=tie, init_std=0.1)).eval()


def tiny_gpt(seed=0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=96, block_size=64, n_layer=2, n_head=4, n_embd=64)).eval()


def test_the_tied_head_stays_one_int8_matrix():
    model = tiny_llama()
    quantize_model(model, "weight_only")
    assert model.lm_head.weight is model.wte.weight and model.lm_head.weight.dtype == torch.int8
    assert model.lm_head.weight_scale is model.wte.weight_scale
    ids = torch.tensor([[5, 17, 42]])
    hidden = model.ln_f(model.wte(ids))  # the head's product with a row of the table is that row's own logit
    expected = hidden @ (model.wte.weight.float() * model.wte.weight_scale[:, None]).t()
    assert torch.allclose(model.lm_head(hidden), expected, atol=1e-5)


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt], ids=["llama", "gpt"])
def test_greedy_tokens_of_a_tiny_model_mostly_equal_float32s(make):
    float_model = make()
    int8_model = copy.deepcopy(float_model)
    quantize_model(int8_model, "weight_only")
    prompts = torch.randint(0, 96, (8, 4), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = float_model.generate(prompts, 12, temperature=0.0)
        got = torch.cat([int8_model.generate(p[None], 12, temperature=0.0) for p in prompts])  # batch 1: the kernel
    assert (got == expected).float().mean() >= 0.9  # int8 may flip a near-tie; most tokens must agree


# ----------------------------------------------------------------------------------- the command

def test_quantize_accepts_a_gguf_and_the_chat_loads_the_result(tmp_path):
    gguf_path = write_chat_gguf(tmp_path / "chat.gguf")
    out = tmp_path / "int8"
    assert run_command(compress, ["quantize", str(gguf_path), str(out), "--compute", "weight_only"]) == 0
    chat = load_chat_model(out)  # tokenizer/ with the chat template came along
    assert isinstance(chat.model.lm_head, Int8Linear) and chat.model.lm_head.weight is chat.model.wte.weight
    assert chat.tokenizer.chat_template == load_chat_model(gguf_path).tokenizer.chat_template
    ids = torch.tensor([[1, 2, 3, 116]])
    float_model = load_gguf(gguf_path)
    int8_model = copy.deepcopy(float_model)
    quantize_model(int8_model, "weight_only")
    with torch.no_grad():
        assert torch.equal(chat.model(ids)[0], int8_model(ids)[0])  # what was saved is what was quantized


def test_quantize_accepts_a_hugging_face_llama_folder(tmp_path):
    torch.manual_seed(0)
    hf_model = LlamaForCausalLM(HFLlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                              num_attention_heads=4, num_key_value_heads=2,
                                              max_position_embeddings=64, tie_word_embeddings=False))
    hf_model.save_pretrained(tmp_path / "hf")
    out = tmp_path / "int8"
    assert run_command(compress, ["quantize", str(tmp_path / "hf"), str(out), "--compute", "weight_only"]) == 0
    state_dict, config, _ = load_checkpoint(out, with_train_state=False)
    loaded = saved_model(out, config, state_dict)
    expected = from_pretrained(tmp_path / "hf")
    quantize_model(expected, "weight_only")
    ids = torch.tensor([[3, 14, 15, 92, 65]])
    with torch.no_grad():
        assert torch.equal(loaded(ids)[0], expected(ids)[0])
    assert config["model_class"] == "Llama" and config["quantization"]["compute"] == "weight_only"


def test_a_path_that_does_not_exist_is_an_error_not_a_traceback(tmp_path, capsys):
    assert run_command(compress, ["quantize", str(tmp_path / "nowhere.gguf"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nowhere.gguf" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_model_is_an_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a model")
    assert run_command(compress, ["quantize", str(tmp_path / "notes.txt"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_the_command_never_writes_over_its_gguf_input(tmp_path, capsys):
    gguf_path = write_chat_gguf(tmp_path / "chat.gguf")
    before = gguf_path.read_bytes()
    assert run_command(compress, ["quantize", str(gguf_path), str(gguf_path), "--overwrite"]) == 2
    assert "error:" in capsys.readouterr().err and gguf_path.read_bytes() == before


def test_prune_refuses_a_gguf_with_an_error(tmp_path, capsys):
    gguf_path = write_chat_gguf(tmp_path / "chat.gguf")
    assert run_command(compress, ["prune", str(gguf_path), str(tmp_path / "out"), "--mlp", "0.5"]) == 2
    assert "prune takes a minilm checkpoint" in capsys.readouterr().err and not (tmp_path / "out").exists()
