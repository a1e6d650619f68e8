"""GGUF, llama.cpp's one-file model format, read by hand: the header, the metadata, the tensor table.

A GGUF file (versions 2 and 3; little-endian) is four parts, one after the other:

    header        b"GGUF", version (uint32), tensor count (uint64), metadata count (uint64)
    metadata      key (string), value type (uint32), value            -- one per metadata entry
    tensor infos  name (string), n_dims (uint32), dims (uint64 each, innermost first),
                  ggml type (uint32), offset (uint64, from the start of the data)   -- one per tensor
    data          starts at the next multiple of `general.alignment` (32 if absent); each tensor's
                  bytes are at its offset, in blocks of its ggml type

A string is its byte length (uint64) then UTF-8 bytes; an array is its element type (uint32), its length
(uint64), then the elements (arrays may hold arrays). Everything is read through one bounds-checked
cursor: every length is checked against the bytes that remain before anything is read or allocated, so
a truncated or corrupt file gives a `GGUFError` that names it, never a read past the end.

This module is torch-free (stdlib only) so that the tokenizer (which reads the vocabulary from the
metadata) and the model loader (minilm/gguf/) can both use it; turning tensor bytes into numbers is
minilm/gguf/dequant.py's job.
"""

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from common.errors import CheckpointError, MissingFileError

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # ggml's GGML_MAX_DIMS
MAX_ARRAY_NESTING = 8  # arrays of arrays: real files nest at most once; a deeper nest is corruption

# Metadata value types: id -> (name, struct format) for the fixed-size ones.
_SCALAR_TYPES = {
    0: ("uint8", "B"), 1: ("int8", "b"), 2: ("uint16", "H"), 3: ("int16", "h"), 4: ("uint32", "I"),
    5: ("int32", "i"), 6: ("float32", "f"), 7: ("bool", "?"), 10: ("uint64", "Q"), 11: ("int64", "q"),
    12: ("float64", "d"),
}
_STRING, _ARRAY = 8, 9
_MIN_VALUE_BYTES = {_STRING: 8, _ARRAY: 12}  # an empty string is its length; an empty array type + length

# ggml tensor types: id -> (name, elements per block, bytes per block). The reader only needs the sizes
# (to know where a tensor ends); minilm/gguf/dequant.py says which ones it can turn into floats.
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
    28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
}


class GGUFError(CheckpointError):
    """A GGUF file that cannot be read: not GGUF, truncated, corrupt, or using what minilm does not have."""


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # row-major, torch's order (the file lists dims innermost first: reversed here)
    ggml_type: int
    type_name: str  # "F32", "Q4_1", ...
    offset: int  # absolute byte offset of the tensor's data in the file
    n_bytes: int


@dataclass
class GGUFFile:
    path: Path
    version: int
    metadata: dict[str, object]  # strings are str, arrays lists, numbers and bools Python values
    tensors: dict[str, TensorInfo]  # in file order
    _data: mmap.mmap  # the whole file, mapped read-only

    def tensor_bytes(self, name: str) -> memoryview:
        """The raw bytes of tensor `name` (a read-only view into the mapped file, nothing copied)."""
        if name not in self.tensors:
            raise GGUFError(f"{self.path}: no tensor named {name!r} (it has {len(self.tensors)} tensors)")
        info = self.tensors[name]
        if info.offset < 0 or info.offset + info.n_bytes > len(self._data):  # checked when read; kept safe
            raise GGUFError(f"{self.path}: tensor {name!r} lies outside the file")
        return memoryview(self._data)[info.offset: info.offset + info.n_bytes]


def read_gguf(path) -> GGUFFile:
    """Read a GGUF file's header, metadata and tensor table (the tensor data stays in the file, mapped)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such GGUF file")
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size < 24:  # magic, version and the two counts
            raise GGUFError(f"{path}: {size} bytes is too short to be a GGUF file (the header alone is 24); "
                            "the file is empty or incomplete: download it again")
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        cursor = _Cursor(data, path)
        version, tensor_count, kv_count = _read_header(cursor)
        metadata = _read_metadata(cursor, kv_count)
        alignment = _alignment(metadata, path)
        infos = _read_tensor_infos(cursor, tensor_count)
        data_start = _round_up(cursor.pos, alignment)  # the data begins at the next multiple of the alignment
        tensors = {name: _tensor_info(name, shape, ggml_type, offset, data_start, alignment, cursor)
                   for name, shape, ggml_type, offset in infos}
    except BaseException:
        data.close()
        raise
    return GGUFFile(path, version, metadata, tensors, data)


# ---- the cursor: every read checked against the end of the file ------------------------------------

class _Cursor:
    def __init__(self, data, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def fail(self, what: str) -> GGUFError:
        return GGUFError(f"{self.path}: {what} (byte {self.pos} of {len(self.data)}); the file is corrupt "
                         "or incomplete: download or convert it again")

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n_bytes: int, what: str) -> bytes:
        if n_bytes > self.remaining():
            raise self.fail(f"truncated: {what} needs {n_bytes} bytes, {self.remaining()} remain")
        chunk = self.data[self.pos: self.pos + n_bytes]
        self.pos += n_bytes
        return chunk

    def values(self, fmt: str, what: str) -> tuple:
        """Read little-endian values of struct format `fmt` (e.g. "3Q", "IQ")."""
        raw = self.take(struct.calcsize("<" + fmt), what)
        if "?" in fmt and raw.strip(b"\x00\x01"):  # struct takes any nonzero byte as True; GGUF allows 0, 1
            raise self.fail(f"{what} holds a boolean byte other than 0 or 1")
        return struct.unpack("<" + fmt, raw)

    def value(self, fmt: str, what: str):
        return self.values(fmt, what)[0]

    def count(self, what: str, min_item_bytes: int) -> int:
        """A uint64 count of items that each take at least `min_item_bytes`: checked before any allocation."""
        n = self.value("Q", what)
        if n * min_item_bytes > self.remaining():
            raise self.fail(f"{what} is {n}, more than the {self.remaining()} bytes left could hold")
        return n

    def string(self, what: str) -> str:
        n_bytes = self.count(f"the length of {what}", 1)
        raw = self.take(n_bytes, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not valid UTF-8") from None


# ---- the parts of the file -------------------------------------------------------------------------

def _read_header(cursor: _Cursor) -> tuple[int, int, int]:
    magic = cursor.take(4, "the magic number")
    if magic != MAGIC:
        raise GGUFError(f"{cursor.path}: not a GGUF file (it starts with {bytes(magic)!r}, not {MAGIC!r}); "
                        "give the path of a .gguf file")
    version = cursor.value("I", "the version")
    if version not in SUPPORTED_VERSIONS:
        if struct.unpack(">I", struct.pack("<I", version))[0] in SUPPORTED_VERSIONS:
            raise GGUFError(f"{cursor.path}: a big-endian GGUF file; minilm reads little-endian ones: "
                            "convert the model again without --bigendian")
        raise GGUFError(f"{cursor.path}: GGUF version {version}; minilm reads versions "
                        f"{' and '.join(map(str, SUPPORTED_VERSIONS))}: convert the model with a recent llama.cpp")
    tensor_count = cursor.count("the tensor count", 24)  # name length, n_dims, type, offset
    kv_count = cursor.count("the metadata count", 13)  # key length, value type, one byte of value
    return version, tensor_count, kv_count


def _read_metadata(cursor: _Cursor, kv_count: int) -> dict[str, object]:
    metadata = {}
    for i in range(kv_count):
        key = cursor.string(f"the key of metadata entry {i}")
        if key in metadata:
            raise cursor.fail(f"the metadata key {key!r} appears twice")
        value_type = cursor.value("I", f"the type of {key!r}")
        metadata[key] = _read_value(cursor, value_type, key, depth=0)
    return metadata


def _read_value(cursor: _Cursor, value_type: int, key: str, depth: int):
    if value_type in _SCALAR_TYPES:
        return cursor.value(_SCALAR_TYPES[value_type][1], f"the value of {key!r}")
    if value_type == _STRING:
        return cursor.string(f"the value of {key!r}")
    if value_type == _ARRAY:
        return _read_array(cursor, key, depth)
    raise cursor.fail(f"the metadata {key!r} has value type {value_type}, which GGUF does not define (0-12)")


def _read_array(cursor: _Cursor, key: str, depth: int) -> list:
    if depth >= MAX_ARRAY_NESTING:
        raise cursor.fail(f"the array {key!r} nests arrays more than {MAX_ARRAY_NESTING} deep")
    item_type = cursor.value("I", f"the element type of the array {key!r}")
    if item_type in _SCALAR_TYPES:  # numbers: one struct call for the whole array
        fmt = _SCALAR_TYPES[item_type][1]
        n = cursor.count(f"the length of the array {key!r}", struct.calcsize(fmt))
        return list(cursor.values(f"{n}{fmt}", f"the array {key!r}"))
    if item_type not in _MIN_VALUE_BYTES:
        raise cursor.fail(f"the array {key!r} has element type {item_type}, which GGUF does not define (0-12)")
    n = cursor.count(f"the length of the array {key!r}", _MIN_VALUE_BYTES[item_type])
    return [_read_value(cursor, item_type, key, depth + 1) for _ in range(n)]


def _alignment(metadata: dict, path: Path) -> int:
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if type(alignment) is not int or alignment <= 0 or alignment & (alignment - 1):
        raise GGUFError(f"{path}: general.alignment is {alignment!r}; it must be a power of two")
    return alignment


def _read_tensor_infos(cursor: _Cursor, tensor_count: int) -> list[tuple[str, tuple[int, ...], int, int]]:
    infos, names = [], set()
    for i in range(tensor_count):
        name = cursor.string(f"the name of tensor {i}")
        if name in names:
            raise cursor.fail(f"the tensor name {name!r} appears twice")
        names.add(name)
        n_dims = cursor.value("I", f"the number of dimensions of {name!r}")
        if n_dims > MAX_DIMS:
            raise cursor.fail(f"tensor {name!r} has {n_dims} dimensions; GGUF allows at most {MAX_DIMS}")
        dims_innermost_first = cursor.values(f"{n_dims}Q", f"the dimensions of {name!r}")
        ggml_type, offset = cursor.values("IQ", f"the type and offset of {name!r}")
        infos.append((name, tuple(reversed(dims_innermost_first)), ggml_type, offset))
    return infos


def _tensor_info(name, shape, ggml_type, relative_offset, data_start, alignment, cursor) -> TensorInfo:
    if ggml_type not in GGML_TYPES:
        raise GGUFError(f"{cursor.path}: tensor {name!r} has ggml type {ggml_type}, which minilm does not "
                        "know; the file is corrupt or newer than minilm (convert it to Q8_0, F16 or F32)")
    type_name, block_elements, block_bytes = GGML_TYPES[ggml_type]
    row = shape[-1] if shape else 1
    if row % block_elements:
        raise GGUFError(f"{cursor.path}: tensor {name!r} of shape {shape} is {type_name}, whose blocks hold "
                        f"{block_elements} values, but its rows hold {row}; the file is corrupt")
    n_elements = 1
    for dim in shape:
        n_elements *= dim
    n_bytes = n_elements // block_elements * block_bytes
    offset = data_start + relative_offset
    if relative_offset % alignment:
        raise GGUFError(f"{cursor.path}: tensor {name!r} starts at offset {relative_offset}, not a multiple of "
                        f"the alignment {alignment}; the file is corrupt")
    if offset + n_bytes > len(cursor.data):
        raise GGUFError(f"{cursor.path}: tensor {name!r} ({type_name}, shape {shape}) needs bytes "
                        f"{offset}-{offset + n_bytes}, past the end of the file ({len(cursor.data)} bytes); "
                        "the file is truncated or corrupt: download or convert it again")
    return TensorInfo(name, shape, ggml_type, type_name, offset, n_bytes)


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple
