"""Making a trained model smaller: int8 weights, fewer attention heads, sparser MLPs (docs/compression.md).

    int8.py           the arithmetic of symmetric int8: scales, rounding, the int8 x int8 -> int32 matmul;
                      compile_kernels() fuses its elementwise steps with torch.compile
    int8_modules.py   Int8Linear (weight-only or int8 compute) and Int8Embedding
    int8_gemv.py      the weight-only product for a few tokens (decoding): a small C kernel that reads the
                      int8 weight itself, built on first use
    quantize.py       a whole model to int8, and the empty int8 shell a quantized checkpoint loads into
    heads.py          head importance from gate gradients (Michel et al. 2019); physical head removal
    pruned.py         a pruned model's shape in config.json, rebuilt by the loaders before the weights
    mlp.py            magnitude pruning of the MLP weights with torch.nn.utils.prune
    __main__.py       python -m minilm.compress quantize | prune (the command)

It imports only minilm/model and common, so that the checkpoint loaders (minilm/training, minilm/finetune)
can rebuild a quantized or pruned model like any other; only the command, __main__.py, imports more (the
loaders, and data/ for a classifier's examples), and nothing imports it.
"""

from .heads import gated_heads, head_importance, least_important, prune_heads, transformer_of
from .int8 import compile_kernels
from .int8_modules import Int8Embedding, Int8Linear
from .mlp import mlp_sparsity, prune_mlp
from .pruned import build_model, model_record
from .quantize import QuantizationRecord, int8_shell, is_quantized, quantize_model, set_compute

__all__ = ["Int8Linear", "Int8Embedding", "compile_kernels", "QuantizationRecord", "quantize_model", "int8_shell", "is_quantized",
           "set_compute", "head_importance", "least_important", "prune_heads", "gated_heads", "transformer_of",
           "prune_mlp", "mlp_sparsity", "build_model", "model_record"]
