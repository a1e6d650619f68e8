"""Dequantization (minilm/gguf/dequant.py) bit for bit against the `gguf` package: small files written
here with its writer and quantizer, and every tensor of the real SmolLM2-135M-Instruct file."""

import gguf
import numpy as np
import pytest
import torch

from common.gguf import GGUFError, read_gguf
from data.assets import fetch
from minilm.gguf import SUPPORTED_TYPES, dequantize

QT = gguf.GGMLQuantizationType
SHAPES = [(3, 4, 64), (5, 96), (32,)]  # rows are whole blocks of 32; a 3-d tensor; a vector


def sample_values(shape, seed):
    """Normal values with a few hard ones: a block of zeros, huge and tiny magnitudes, negative zero."""
    values = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).numpy().astype(np.float32)
    flat = values.reshape(-1)
    flat[:32] = 0.0
    flat[32: 32 + 4] = [6.0e4, -6.0e4, 1e-7, -0.0] if flat.size > 36 else flat[32: 36]
    return values


def bits(array) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)


@pytest.fixture(scope="module")
def quantized_file(tmp_path_factory):
    """One GGUF file holding every supported type at every shape, quantized by gguf's own quantizer."""
    path = tmp_path_factory.mktemp("gguf") / "quantized.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    for type_name in SUPPORTED_TYPES:
        for i, shape in enumerate(SHAPES):
            stored = gguf.quants.quantize(sample_values(shape, seed=i), QT[type_name])
            writer.add_tensor(f"{type_name}.{i}", stored, raw_dtype=QT[type_name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("type_name", SUPPORTED_TYPES)
def test_each_supported_type_dequantizes_bit_for_bit_as_gguf_does(quantized_file, type_name):
    ours = read_gguf(quantized_file)
    for tensor in gguf.GGUFReader(quantized_file).tensors:
        if tensor.name.split(".")[0] != type_name:
            continue
        expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        got = dequantize(ours, tensor.name)
        assert got.dtype == torch.float32 and got.shape == SHAPES[int(tensor.name.split(".")[1])]
        assert np.array_equal(bits(got.numpy()), bits(expected.reshape(got.shape))), tensor.name


def test_the_result_is_a_copy_not_the_file(quantized_file):
    model_file = read_gguf(quantized_file)
    first = dequantize(model_file, "F32.1")
    expected = first.clone()
    first.fill_(7.0)  # a read-only mapping would refuse this; a view of the file would change the next read
    assert torch.equal(dequantize(model_file, "F32.1"), expected)


def test_an_unsupported_type_names_itself_and_the_tensor(tmp_path):
    path = tmp_path / "q4k.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((2, 144), dtype=np.uint8), raw_dtype=QT.Q4_K)  # 2 blocks
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    model_file = read_gguf(path)
    assert model_file.tensors["blk.0.attn_q.weight"].shape == (2, 256)  # the reader knows Q4_K's size
    with pytest.raises(GGUFError) as caught:
        dequantize(model_file, "blk.0.attn_q.weight")
    assert all(word in str(caught.value) for word in ("Q4_K", "blk.0.attn_q.weight", str(path), "Q8_0"))


# ---- the real file --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2():
    path = fetch("smollm2-gguf")
    return read_gguf(path), gguf.GGUFReader(path)  # the reference reader takes ~10 s (100k strings)


@pytest.mark.slow
def test_smollm2_metadata_and_tensor_table_equal_the_reference(smollm2):
    ours, reference = smollm2
    expected = {key: field.contents() for key, field in reference.fields.items() if not key.startswith("GGUF.")}
    assert ours.metadata == expected
    assert [(t.name, t.data_offset, t.n_bytes, int(t.tensor_type)) for t in reference.tensors] == \
        [(i.name, i.offset, i.n_bytes, i.ggml_type) for i in ours.tensors.values()]


@pytest.mark.slow
def test_every_smollm2_tensor_dequantizes_bit_for_bit_as_gguf_does(smollm2):
    ours, reference = smollm2
    for tensor in reference.tensors:  # 210 Q4_1, 1 Q8_0 (the token embedding), 61 F32: 134.5M values
        expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        got = dequantize(ours, tensor.name)
        assert np.array_equal(bits(got.numpy()), bits(expected.reshape(got.shape))), tensor.name
