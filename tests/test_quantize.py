"""int8 quantization (minilm/compress/): the rounding bound, the int8 x int8 -> int32 product, the int8 modules
against their float ones, and quantized checkpoints loading through the project's own loaders."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file

import sample
from common.errors import CheckpointError, run_command
from compress_fixtures import finetuned_classifier
from minilm import GPT, GPTConfig
from minilm.compress import Int8Embedding, Int8Linear, quantize_model, set_compute
from minilm.compress import int8 as int8_math
from minilm.compress.__main__ import main as compress
from minilm.finetune.checkpoints import load_base, load_finetuned
from minilm.training.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_each_weight_is_within_half_a_step_of_its_row_scale():
    w = torch.randn(64, 48) * torch.logspace(-2, 1, 64)[:, None]  # rows of very different ranges
    q, scale = int8_math.quantize_rows(w)
    assert q.dtype == torch.int8 and q.abs().max() <= 127
    error = (int8_math.dequantize_rows(q, scale) - w).abs()
    assert (error <= scale / 2 * (1 + 1e-5)).all()


def test_the_largest_weight_of_each_row_is_represented_exactly():
    w = torch.randn(16, 32)
    q, scale = int8_math.quantize_rows(w)
    largest = w.abs().argmax(dim=1)
    rows = torch.arange(16)
    assert torch.allclose(int8_math.dequantize_rows(q, scale)[rows, largest], w[rows, largest])
    assert (q[rows, largest].abs() == 127).all()


def test_per_row_scales_beat_one_scale_for_the_whole_matrix_when_rows_differ():
    w = torch.randn(64, 48) * torch.logspace(-2, 1, 64)[:, None]
    per_row = int8_math.dequantize_rows(*int8_math.quantize_rows(w))
    per_tensor = int8_math.dequantize_rows(*int8_math.quantize_rows(w.reshape(1, -1))).reshape(w.shape)
    def relative_error(w_hat):  # of each row: per-tensor rounds the smallest rows to nearly nothing
        return ((w_hat - w).norm(dim=1) / w.norm(dim=1)).mean()

    assert relative_error(per_row) < 0.01 < 0.3 < relative_error(per_tensor)


def test_an_all_zero_row_quantizes_to_zeros_without_dividing_by_zero():
    q, scale = int8_math.quantize_rows(torch.zeros(2, 8))
    assert torch.equal(q, torch.zeros(2, 8, dtype=torch.int8)) and torch.isfinite(scale).all()


def test_the_int8_matmul_is_the_exact_integer_product():
    a = torch.randint(-127, 128, (17, 40), dtype=torch.int8)
    b = torch.randint(-127, 128, (24, 40), dtype=torch.int8)
    exact = a.long() @ b.long().t()
    assert torch.equal(int8_math.int8_matmul(a, b.t()).long(), exact)


def test_without_int_mm_the_same_integers_are_multiplied_in_float32(monkeypatch):
    monkeypatch.setattr(int8_math, "INT_MM", False)
    a = torch.randint(-127, 128, (5, 40), dtype=torch.int8)
    b = torch.randint(-127, 128, (3, 40), dtype=torch.int8)
    assert torch.equal(int8_math.int8_matmul(a, b.t()), (a.long() @ b.long().t()).float())


@pytest.mark.parametrize("compute", ["weight_only", "int8"])
def test_an_int8_linear_stays_close_to_its_float_linear(compute):
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    x = torch.randn(3, 5, 64)
    y, y_q = linear(x), Int8Linear.from_linear(linear, compute)(x)
    assert y_q.shape == y.shape
    assert (y_q - y).abs().max() < 0.02 * y.abs().max()


def test_weight_only_compute_is_the_float_product_with_the_dequantized_weight():
    torch.manual_seed(0)
    linear = nn.Linear(16, 8)
    module = Int8Linear.from_linear(linear, "weight_only")
    w = module.weight.float() * module.weight_scale[:, None]
    x = torch.randn(4, 16)
    assert torch.allclose(module(x), x @ w.t() + linear.bias, atol=1e-6)


def test_an_int8_embedding_looks_up_the_dequantized_rows():
    torch.manual_seed(0)
    table = nn.Embedding(20, 8)
    module = Int8Embedding.from_embedding(table)
    ids = torch.tensor([[0, 3, 19]])
    expected = module.weight.float()[ids] * module.weight_scale[ids][..., None]
    assert torch.equal(module(ids), expected)
    assert (module(ids) - table(ids)).abs().max() <= module.weight_scale.max() / 2


def tiny_gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=32)).eval()


def test_quantizing_a_gpt_replaces_every_linear_and_embedding_and_keeps_the_tie():
    model = tiny_gpt()
    quantize_model(model)
    assert not [m for m in model.modules() if type(m) in (nn.Linear, nn.Embedding)]
    assert model.lm_head.weight is model.wte.weight and model.lm_head.weight.dtype == torch.int8


def test_switching_compute_changes_the_path_not_the_stored_tensors():
    model, x = tiny_gpt(), torch.randint(0, 20, (2, 9))
    reference, _ = model(x)
    quantize_model(model, "int8")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    int8_logits, _ = model(x)
    set_compute(model, "weight_only")
    weight_only_logits, _ = model(x)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(int8_logits, weight_only_logits)
    for logits in (int8_logits, weight_only_logits):
        assert (logits - reference).abs().max() < 0.05 * reference.abs().max()


@pytest.fixture
def quantized_gpt_folder(tmp_path):
    """A train_gpt.py-style checkpoint of tiny_gpt with a char tokenizer, quantized by the command."""
    from tokenizer import CharTokenizer
    model, tokenizer = tiny_gpt(), CharTokenizer.train("abcdefghijklmnopqrs\n")
    save_checkpoint(tmp_path / "gpt", model, {"model_class": "GPT", "model": model.config.to_dict()}, None,
                    lambda tmp: tokenizer.save(tmp / "tokenizer"))
    return model, compress(["quantize", str(tmp_path / "gpt"), str(tmp_path / "int8")])


def test_a_quantized_checkpoint_holds_int8_tensors_float32_scales_and_says_how(quantized_gpt_folder):
    _, folder = quantized_gpt_folder
    tensors = load_file(folder / "model.safetensors")
    assert tensors["blocks.0.attn.q_proj.weight"].dtype == torch.int8
    assert tensors["blocks.0.attn.q_proj.weight_scale"].dtype == torch.float32
    assert "lm_head.weight" not in tensors  # the tied table is stored once
    record = json.loads((folder / "config.json").read_text())["quantization"]
    assert record["method"] == "int8-symmetric-per-row" and record["compute"] == "int8"


def test_sample_py_loads_a_quantized_gpt_and_gets_the_quantized_logits(quantized_gpt_folder):
    float_model, folder = quantized_gpt_folder
    loaded, _ = sample.load_gpt(folder)
    quantize_model(float_model)
    x = torch.randint(0, 20, (2, 9))
    assert torch.equal(loaded(x)[0], float_model(x)[0])


def test_quantizing_a_quantized_checkpoint_is_refused(quantized_gpt_folder, tmp_path, capsys):
    _, folder = quantized_gpt_folder
    assert run_command(compress, ["quantize", str(folder), str(tmp_path / "again")]) == 2
    assert "already quantized" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_a_quantized_model_cannot_be_a_base_to_fine_tune(quantized_gpt_folder):
    _, folder = quantized_gpt_folder
    with pytest.raises(CheckpointError, match="int8 weights do not train"):
        load_base(folder)


def test_the_command_never_replaces_a_checkpoint_without_overwrite(quantized_gpt_folder, tmp_path, capsys):
    assert run_command(compress, ["quantize", str(tmp_path / "gpt"), str(tmp_path / "int8")]) == 2
    err = capsys.readouterr().err
    assert f"OUT {tmp_path / 'int8'} is a checkpoint folder" in err and "--overwrite" in err


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return finetuned_classifier(tmp_path_factory.mktemp("classifier"))


def test_a_quantized_classifier_loads_through_load_finetuned_and_predicts_like_the_float_one(classifier, tmp_path):
    float_model, tokenizer, _ = load_finetuned(classifier)
    folder = compress(["quantize", str(classifier), str(tmp_path / "int8"), "--evaluate", "false"])
    int8_model, _, config = load_finetuned(folder)
    assert config["base"] is None and isinstance(int8_model.backbone.blocks[0].mlp.fc_in, Int8Linear)
    ids = torch.tensor([tokenizer.encode_plus("the film was very good")["input_ids"]])
    p_float, p_int8 = float_model(ids)[0].softmax(-1), int8_model(ids)[0].softmax(-1)
    assert (p_float - p_int8).abs().max() < 0.05


COMPILED_KERNELS_CHECK = """
import warnings, torch, torch.nn as nn
warnings.filterwarnings("error", message="torch.compile is not available")  # fail rather than fall back
from minilm.compress import Int8Linear, compile_kernels
torch.manual_seed(0)
module, x = Int8Linear.from_linear(nn.Linear(64, 48)), torch.randn(2, 7, 64)
eager = module(x)
assert compile_kernels()
assert torch.allclose(module(x), eager, atol=1e-5)
"""


@pytest.mark.slow
def test_compiled_kernels_compute_what_the_eager_ones_do():
    # In its own interpreter: Inductor imports setuptools, which refuses to load once another test's
    # import has pulled in the standard library's distutils.
    result = subprocess.run([sys.executable, "-c", COMPILED_KERNELS_CHECK], cwd=REPO, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
