"""Model FLOPs utilisation (MFU): the share of the chip's peak that the training step turns into model math.

    FLOPs per token = 6 · N + 12 · n_layer · n_embd · T            (docs/training.md, "Throughput and MFU")
    MFU = tokens per second · FLOPs per token / (peak FLOP/s · processes)

N counts the parameters that multiply (every one but the position-embedding tables, which are looked up);
6 = 2 for the forward multiply-add and 4 for the two products of the backward. The second term is
attention's q·kᵀ and P·v, which grow with the sequence length T and have no parameters.
The peak is the vendor's dense tensor-core figure for the dtype the matmuls run in (float32 runs as TF32,
which the Trainer enables on CUDA). An unknown chip gets no guess: "peak unknown".
"""

import torch

# Dense peak TFLOP/s per device, from the vendors' data sheets: (name fragment, {dtype: TFLOP/s}). The first
# fragment found in torch.cuda.get_device_name() wins, so the more specific names come first.
PEAK_TFLOPS = [
    ("H100 PCIe", {"bfloat16": 756, "float16": 756, "float32": 378}),
    ("H100", {"bfloat16": 989, "float16": 989, "float32": 495}),
    ("H200", {"bfloat16": 989, "float16": 989, "float32": 495}),
    ("A100", {"bfloat16": 312, "float16": 312, "float32": 156}),
    ("L4", {"bfloat16": 121, "float16": 121, "float32": 60}),
    ("RTX 4090", {"bfloat16": 165, "float16": 165, "float32": 83}),
]


def flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs (forward + backward) per token of a GPT or BERT with sequences of seq_len tokens."""
    config = model.config
    position_tables = [m for name, m in model.named_modules() if name.endswith(("wpe", "position"))]
    looked_up = sum(p.numel() for table in position_tables for p in table.parameters())
    multiplying = sum(p.numel() for p in model.parameters()) - looked_up
    return 6 * multiplying + 12 * config.n_layer * config.n_embd * seq_len


def peak_flops(device: str, dtype: str) -> float | None:
    """The device's dense peak FLOP/s for dtype, or None when the table does not know the device."""
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((table[dtype] * 1e12 for fragment, table in PEAK_TFLOPS if fragment in name), None)


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else device
