"""Int8 stand-ins for nn.Linear and nn.Embedding: int8 weights, one float32 scale per row.

    Int8Linear     weight (out, in) int8, weight_scale (out,) float32, bias (out,) float32 or none
                   compute "weight_only": float32 activations times the int8 weight (the accuracy cost of
                                 int8 storage alone); a few tokens read the int8 weight directly
                                 (int8_gemv.py: what makes decoding faster), more dequantize it first
                   compute "int8": quantize each token of the input to int8 as well (its own scale, found
                                 at run time: "dynamic"), multiply int8 x int8 -> int32, rescale
    Int8Embedding  weight (V, C) int8, weight_scale (V,) float32: a looked-up row times its scale

The names of the tensors are those of the float module plus `weight_scale`, so a quantized checkpoint's
keys read like the float one's: blocks.0.attn.q_proj.weight (int8), blocks.0.attn.q_proj.weight_scale.
They are buffers, not parameters: nothing here trains.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .int8 import Kernels, dequantize_rows, int8_matmul, quantize_rows
from .int8_gemv import can_use, linear_int8

COMPUTES = ("int8", "weight_only")


class Int8Linear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool, compute: str = "int8"):
        super().__init__()
        if compute not in COMPUTES:
            raise ValueError(f"compute must be one of {', '.join(COMPUTES)}; got {compute!r}")
        self.in_features, self.out_features, self.compute = in_features, out_features, compute
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, compute: str = "int8") -> "Int8Linear":
        """Quantize a trained nn.Linear, each output channel (row of the weight) with its own scale."""
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, compute)
        q, scale = quantize_rows(linear.weight.detach())  # (out, in) int8, (out, 1)
        module.weight.copy_(q)
        module.weight_scale.copy_(scale.squeeze(1))
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach())
        return module

    def forward(self, x):  # (..., in) -> (..., out)
        if self.compute == "weight_only":
            return self._weight_only(x)
        shape = x.shape
        x_q, x_scale = Kernels.quantize_rows(x.reshape(-1, self.in_features))  # (N, in) int8, (N, 1): per token
        acc = int8_matmul(x_q, self.weight.t())  # (N, out), exact integer sums
        y = Kernels.rescale(acc, self.weight_scale, x_scale, self.bias)  # undo both scales, add the bias
        return y.reshape(*shape[:-1], self.out_features)

    def _weight_only(self, x):
        """int8 weights, float32 activations. A few tokens (decoding): the C kernel reads the int8 weight as it
        is (int8_gemv.py); a prompt, or where there is no kernel: dequantize, then a float32 matmul."""
        rows = x.numel() // self.in_features
        if can_use(x, rows):
            y = linear_int8(x.reshape(rows, self.in_features), self.weight, self.weight_scale)  # (rows, out)
            y = y if self.bias is None else y.add_(self.bias)
            return y.reshape(*x.shape[:-1], self.out_features)
        w = dequantize_rows(self.weight, self.weight_scale[:, None])  # (out, in) float32
        return F.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, compute={self.compute}"


class Int8Embedding(nn.Module):
    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.register_buffer("weight", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(num_embeddings))

    @classmethod
    def from_embedding(cls, embedding: nn.Embedding) -> "Int8Embedding":
        """Quantize a trained table, each row (one token's vector) with its own scale."""
        module = cls(embedding.num_embeddings, embedding.embedding_dim)
        q, scale = quantize_rows(embedding.weight.detach())  # (V, C) int8, (V, 1)
        module.weight.copy_(q)
        module.weight_scale.copy_(scale.squeeze(1))
        return module

    def forward(self, ids):  # (...) ids -> (..., C)
        return dequantize_rows(F.embedding(ids, self.weight), self.weight_scale[ids][..., None])

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8"
