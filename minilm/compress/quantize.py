"""A whole model to int8: every nn.Linear becomes an Int8Linear, every nn.Embedding an Int8Embedding.

LayerNorms, biases and the attention arithmetic (softmax, q·kᵀ, probs·v) stay float32: they are a
small share of the numbers and of the time. A checkpoint records how it was quantized in its
config.json, under "quantization" (QuantizationRecord), and the loaders of minilm/training/checkpoint.py
and minilm/finetune/checkpoints.py rebuild the float model, call int8_shell to swap in empty int8
modules of the same shapes, then load the int8 tensors into them.

A matrix shared by two modules stays shared: GPT's lm_head reads wte's table (and BERT's MLM decoder the
word embedding), so the lm_head's Int8Linear holds the very int8 tensor and scales of the Int8Embedding,
and the checkpoint stores them once.
"""

from dataclasses import asdict, dataclass

import torch.nn as nn

from common.errors import CheckpointError

from .int8 import INT_MM
from .int8_modules import COMPUTES, Int8Embedding, Int8Linear

METHOD = "int8-symmetric-per-row"


@dataclass
class QuantizationRecord:
    """What config.json says under "quantization"."""

    method: str = METHOD  # weights: int8, scale = max|row| / 127, one per output channel / table row
    compute: str = "int8"  # "int8": int8 x int8 -> int32 with per-token activation scales; "weight_only"
    int_mm: bool = INT_MM  # whether the machine that quantized it had torch._int_mm (the loader's may not)

    @classmethod
    def from_config(cls, config: dict, where: str = "config.json") -> "QuantizationRecord":
        record = config["quantization"]
        if not isinstance(record, dict) or record.get("method") != METHOD or record.get("compute") not in COMPUTES:
            raise CheckpointError(f"{where}: 'quantization' is {record!r}; this minilm reads only method {METHOD!r} "
                                  f"with compute one of {', '.join(COMPUTES)}")
        return cls(**{name: record[name] for name in ("method", "compute", "int_mm") if name in record})


def is_quantized(config: dict) -> bool:
    """Whether a checkpoint's config.json describes a quantized model."""
    return config.get("quantization") is not None


def quantize_model(model: nn.Module, compute: str = "int8") -> QuantizationRecord:
    """Quantize model in place, every Linear and Embedding; returns what config.json should record."""
    _replace_modules(model, lambda linear: Int8Linear.from_linear(linear, compute), Int8Embedding.from_embedding)
    return QuantizationRecord(compute=compute)


def int8_shell(model: nn.Module, record: QuantizationRecord) -> None:
    """Swap in int8 modules of the same shapes, empty: what a quantized checkpoint's tensors load into."""
    def linear(module: nn.Linear) -> Int8Linear:
        return Int8Linear(module.in_features, module.out_features, module.bias is not None, record.compute)

    _replace_modules(model, linear, lambda module: Int8Embedding(module.num_embeddings, module.embedding_dim))


def set_compute(model: nn.Module, compute: str) -> None:
    """Switch every Int8Linear between the int8 matmul and the weight-only path (same stored tensors)."""
    if compute not in COMPUTES:
        raise ValueError(f"compute must be one of {', '.join(COMPUTES)}; got {compute!r}")
    for module in model.modules():
        if isinstance(module, Int8Linear):
            module.compute = compute


def _replace_modules(model: nn.Module, make_linear, make_embedding) -> None:
    """Replace each Embedding by make_embedding(it) and each Linear by make_linear(it); a Linear whose weight
    is an Embedding's table (a tied matrix) gets that Int8Embedding's tensors."""
    tables = {}  # id of a float table -> its Int8Embedding
    for kind in (nn.Embedding, nn.Linear):  # tables first, so that a tied Linear finds its table
        for parent, name, module in _children_of_type(model, kind):
            if kind is nn.Embedding:
                new = make_embedding(module)
                tables[id(module.weight)] = new
            else:
                new = make_linear(module)
                table = tables.get(id(module.weight))
                if table is not None:  # share, not copy: one int8 matrix, saved once
                    new.weight, new.weight_scale = table.weight, table.weight_scale
            setattr(parent, name, new)


def _children_of_type(model: nn.Module, kind: type) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute name, module) for every submodule of exactly this kind (not a subclass: a LoRA
    layer that extends nn.Linear keeps its own forward)."""
    return [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
            if type(child) is kind]
