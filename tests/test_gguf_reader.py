"""The hand-written GGUF reader (common/gguf.py) against the `gguf` package, the reference that llama.cpp
ships: files written here with its GGUFWriter read back to the same metadata, shapes, offsets and bytes;
truncated or corrupt files give a GGUFError that names the file, never another exception."""

import random
import struct

import gguf
import numpy as np
import pytest

from common.errors import MissingFileError
from common.gguf import GGML_TYPES, GGUFError, read_gguf

VT = gguf.GGUFValueType
SCALARS = {  # value type -> a value it can hold exactly, at the edge of its range
    VT.UINT8: 255, VT.INT8: -128, VT.UINT16: 65535, VT.INT16: -32768, VT.UINT32: 2**32 - 1, VT.INT32: -2**31,
    VT.UINT64: 2**64 - 1, VT.INT64: -2**63, VT.FLOAT32: 0.1, VT.FLOAT64: 0.1, VT.BOOL: True,
}
TENSORS = {  # name -> an array GGUFWriter stores as is (F32, F16) and its torch-order shape
    "a.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
    "b.weight": np.linspace(-1, 1, 40, dtype=np.float16).reshape(5, 8),
    "c.bias": np.array([1.5, -2.5, 3.25], dtype=np.float32),
}


def write_file(path, metadata=(), tensors=TENSORS, alignment=None, endianess=gguf.GGUFEndian.LITTLE):
    """A GGUF file from GGUFWriter: `metadata` is (key, value, value type, array element type) rows."""
    writer = gguf.GGUFWriter(path, "llama", endianess=endianess)
    if alignment:
        writer.add_custom_alignment(alignment)
    for key, value, vtype, sub_type in metadata:
        writer.add_key_value(key, value, vtype, sub_type)
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def every_metadata_type():
    rows = [(f"test.{vtype.name.lower()}", value, vtype, None) for vtype, value in SCALARS.items()]
    rows += [("test.string", "héllo wörld ✓", VT.STRING, None), ("test.empty_string", "", VT.STRING, None)]
    rows += [(f"test.array_{vtype.name.lower()}", [value, value], VT.ARRAY, vtype) for vtype, value in SCALARS.items()]
    rows += [("test.array_string", ["Ġ t", "<|im_end|>", ""], VT.ARRAY, VT.STRING),
             ("test.array_of_arrays", [[1, 2], [3], [4, 5, 6]], VT.ARRAY, VT.ARRAY),
             ("test.array_bool_mixed", [True, False, True], VT.ARRAY, VT.BOOL)]
    return rows


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    return write_file(tmp_path_factory.mktemp("gguf") / "small.gguf", every_metadata_type())


def test_every_metadata_type_reads_as_gguf_reads_it(small_file):
    ours, reference = read_gguf(small_file).metadata, gguf.GGUFReader(small_file)
    expected = {key: field.contents() for key, field in reference.fields.items() if not key.startswith("GGUF.")}
    # gguf's contents() flattens an array of arrays; ours keeps the nesting that was written
    nested = ours.pop("test.array_of_arrays")
    assert [x for inner in nested for x in inner] == expected.pop("test.array_of_arrays")
    assert ours == expected


def test_metadata_values_are_plain_python_values_of_the_right_type(small_file):
    metadata = read_gguf(small_file).metadata
    assert metadata["test.uint64"] == 2**64 - 1 and metadata["test.int64"] == -2**63
    assert metadata["test.bool"] is True and metadata["test.array_bool_mixed"] == [True, False, True]
    assert metadata["test.float32"] == float(np.float32(0.1)) and metadata["test.float64"] == 0.1
    assert metadata["test.string"] == "héllo wörld ✓" and metadata["test.array_of_arrays"] == [[1, 2], [3], [4, 5, 6]]
    assert metadata["general.architecture"] == "llama"


def test_tensor_shapes_are_in_torch_order(small_file):
    tensors = read_gguf(small_file).tensors
    assert list(tensors) == list(TENSORS)  # file order
    assert {name: info.shape for name, info in tensors.items()} == {n: a.shape for n, a in TENSORS.items()}
    assert [info.type_name for info in tensors.values()] == ["F32", "F16", "F32"]


def test_tensor_offsets_sizes_and_bytes_equal_the_reference(small_file):
    ours = read_gguf(small_file)
    for tensor in gguf.GGUFReader(small_file).tensors:
        info = ours.tensors[tensor.name]
        assert (info.offset, info.n_bytes, info.ggml_type) == (tensor.data_offset, tensor.n_bytes, tensor.tensor_type)
        assert bytes(ours.tensor_bytes(tensor.name)) == tensor.data.tobytes() == TENSORS[tensor.name].tobytes()


def test_tensor_bytes_are_a_read_only_view(small_file):
    view = read_gguf(small_file).tensor_bytes("c.bias")
    assert view.readonly and np.array_equal(np.frombuffer(view, np.float32), TENSORS["c.bias"])


def test_a_custom_alignment_moves_the_data_as_the_reference_does(tmp_path):
    path = write_file(tmp_path / "aligned.gguf", alignment=256)
    ours = read_gguf(path)
    assert ours.metadata["general.alignment"] == 256
    for tensor in gguf.GGUFReader(path).tensors:
        assert ours.tensors[tensor.name].offset == tensor.data_offset
        assert bytes(ours.tensor_bytes(tensor.name)) == TENSORS[tensor.name].tobytes()


def test_the_type_table_agrees_with_the_reference():
    for type_id, (name, block_elements, block_bytes) in GGML_TYPES.items():
        reference = gguf.GGMLQuantizationType(type_id)
        assert (name, (block_elements, block_bytes)) == (reference.name, gguf.GGML_QUANT_SIZES[reference])


def test_version_2_is_read_and_version_3_reported(small_file, tmp_path):
    assert read_gguf(small_file).version == 3
    data = bytearray(small_file.read_bytes())
    data[4:8] = struct.pack("<I", 2)  # version 2 has version 3's layout (3 added big-endian files)
    (tmp_path / "v2.gguf").write_bytes(data)
    assert read_gguf(tmp_path / "v2.gguf").version == 2


# ---- bad files: a GGUFError naming the file, never another exception ----------------------------

def expect_error(path, *words):
    with pytest.raises(GGUFError) as caught:
        read_gguf(path)
    message = str(caught.value)
    assert str(path) in message and all(word in message for word in words), message


def patched(small_file, tmp_path, at: int, new: bytes, name="patched.gguf"):
    data = bytearray(small_file.read_bytes())
    data[at: at + len(new)] = new
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


def end_of_tensor_data(path) -> int:
    return max(info.offset + info.n_bytes for info in read_gguf(path).tensors.values())


def test_every_truncation_is_a_gguf_error(tmp_path):
    compact = [row for row in every_metadata_type() if "array_" not in row[0] or row[0] == "test.array_of_arrays"]
    path = write_file(tmp_path / "compact.gguf", compact, {"c.bias": TENSORS["c.bias"]})
    data = path.read_bytes()  # every kind of field once: header, scalars, strings, nested arrays, tensor infos
    for size in range(end_of_tensor_data(path)):  # every cut before the last tensor's last byte
        (tmp_path / "cut.gguf").write_bytes(data[:size])
        expect_error(tmp_path / "cut.gguf")


def test_random_corruption_gives_a_gguf_error_or_a_readable_file(small_file, tmp_path):
    data, rng = small_file.read_bytes(), random.Random(0)
    header_end = read_gguf(small_file).tensors["a.weight"].offset  # header, metadata and tensor infos
    for trial in range(300):
        corrupt = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            corrupt[rng.randrange(header_end)] = rng.randrange(256)
        (tmp_path / "corrupt.gguf").write_bytes(corrupt)
        try:
            read_gguf(tmp_path / "corrupt.gguf")
        except GGUFError as err:
            assert str(tmp_path / "corrupt.gguf") in str(err)


@pytest.mark.parametrize("field_at, words", [(8, ["tensor count"]), (16, ["metadata count"]),
                                              (24, ["length of the key"])])
def test_an_absurd_count_is_refused_before_anything_is_allocated(small_file, tmp_path, field_at, words):
    expect_error(patched(small_file, tmp_path, field_at, struct.pack("<Q", 2**63)), *words)


def value_offset(path, key: str) -> int:
    """Where the value of metadata `key` starts: after its length-prefixed key and its uint32 type."""
    data = path.read_bytes()
    return data.index(struct.pack("<Q", len(key)) + key.encode()) + 8 + len(key) + 4


def test_an_absurd_string_length_is_refused(small_file, tmp_path):
    at = value_offset(small_file, "test.string")
    expect_error(patched(small_file, tmp_path, at, struct.pack("<Q", 2**62)), "test.string", "more than")


def test_an_absurd_array_length_is_refused(small_file, tmp_path):
    at = value_offset(small_file, "test.array_string") + 4  # after the element type
    expect_error(patched(small_file, tmp_path, at, struct.pack("<Q", 2**60)), "test.array_string", "more than")


def test_an_unknown_metadata_type_is_named(small_file, tmp_path):
    at = value_offset(small_file, "test.uint8") - 4
    expect_error(patched(small_file, tmp_path, at, struct.pack("<I", 99)), "test.uint8", "value type 99")


def test_a_boolean_other_than_0_or_1_is_refused(small_file, tmp_path):
    expect_error(patched(small_file, tmp_path, value_offset(small_file, "test.bool"), b"\x02"), "boolean")


def test_an_unknown_tensor_type_is_named(small_file, tmp_path):
    name = b"c.bias"
    at = small_file.read_bytes().index(struct.pack("<Q", len(name)) + name) + 8 + len(name) + 4 + 8  # 1 dim
    expect_error(patched(small_file, tmp_path, at, struct.pack("<I", 77)), "c.bias", "ggml type 77")


def test_a_tensor_past_the_end_of_the_file_is_refused(small_file, tmp_path):
    name = b"c.bias"
    at = small_file.read_bytes().index(struct.pack("<Q", len(name)) + name) + 8 + len(name) + 4 + 8 + 4
    expect_error(patched(small_file, tmp_path, at, struct.pack("<Q", 2**40)), "c.bias", "past the end")


def test_other_files_are_not_gguf(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(32))
    expect_error(tmp_path / "model.safetensors", "not a GGUF file")
    (tmp_path / "empty.gguf").write_bytes(b"")
    expect_error(tmp_path / "empty.gguf", "too short")


def test_version_1_and_big_endian_files_are_refused_with_a_way_out(small_file, tmp_path):
    expect_error(patched(small_file, tmp_path, 4, struct.pack("<I", 1)), "version 1")
    big = write_file(tmp_path / "big.gguf", endianess=gguf.GGUFEndian.BIG)
    expect_error(big, "big-endian")


def test_a_missing_file_is_a_missing_file_error(tmp_path):
    with pytest.raises(MissingFileError, match="no such GGUF file"):
        read_gguf(tmp_path / "nothing.gguf")


def test_asking_for_a_tensor_the_file_lacks_names_it(small_file):
    with pytest.raises(GGUFError, match="no tensor named 'lm_head.weight'"):
        read_gguf(small_file).tensor_bytes("lm_head.weight")
