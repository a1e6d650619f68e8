"""Record one forward pass: each named step's shape, dtype, statistics and the line of minilm/model/ that
produced it, in the order the code runs.

    with ShapeTrace(model) as trace:
        model(input_ids)
    trace.steps        # [Step("token embedding", ...), ..., Step("logits", ...)]

The model's values come from two kinds of code, so the tracer listens in two ways; neither needs a
single line in minilm/model/ (the model has no trace-only branches: it cannot tell it is being traced).

  the output of a module      wte, q_proj, ln_attn, a whole Block ...   a forward hook on that module
  (MODULE_STEPS)              torch calls it with the module's output each time the module has run

  arithmetic the model code   q @ kᵀ / √d, softmax, x + attn(...) ...   a TorchFunctionMode: while it is
  writes out itself           (no module returns these)                   on, torch hands it every torch
  (OP_STEPS)                                                             call; the tracer keeps those made
                                                                         from minilm/model/ that OP_STEPS names

A Llama (LLAMA_MODULE_STEPS, LLAMA_OP_STEPS) adds the rotary angles, q and k turned, k and v shared by
their query heads, SwiGLU's gate, and names its norms RMSNorm.

The file:line of a step is read off the Python call stack: the innermost frame in minilm/model/.
Attention runs written out (attn_impl "manual") for the trace, since the fused kernel (sdpa) never
forms the scores and probabilities; the setting is put back afterwards, with the hooks removed.
"""

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from ..model import Block, Llama, MultiHeadAttention
from ..model import __file__ as model_init_file

MODEL_DIR = Path(model_init_file).resolve().parent  # minilm/model/
REPO_ROOT = MODEL_DIR.parents[1]  # what file:line is written relative to
TORCH_DIR = Path(torch.__file__).resolve().parent

HEADS = "B, n_head, T, head_dim"  # q, k, v split into heads (minilm/model/attention.py _split_heads)
KV_HEADS = "B, n_kv_head, T, head_dim"  # Llama's k and v: fewer heads than q (grouped-query attention)
SCORES = "B, n_head, T, T_k"  # T_k keys: T, plus any cached ones (a prefix)

# Module outputs: the module's name in model.named_modules() (any block's index written N) ->
# (the step's name, the dimensions of its shape). Dropout is left out: in eval mode it is the identity.
MODULE_STEPS = {
    "wte": ("token embedding", "B, T, C"),  # GPT
    "wpe": ("position embedding", "1, T, C"),
    "embeddings.word": ("word embedding", "B, T, C"),  # BERT
    "embeddings.position": ("position embedding", "1, T, C"),
    "embeddings.token_type": ("segment embedding", "B, T, C"),
    "embeddings.ln": ("embedding LayerNorm", "B, T, C"),
    "blocks.N.ln_attn": ("ln_attn (LayerNorm)", "B, T, C"),  # every block
    "blocks.N.attn.q_proj": ("q (q_proj)", "B, T, C"),
    "blocks.N.attn.k_proj": ("k (k_proj)", "B, T, C"),
    "blocks.N.attn.v_proj": ("v (v_proj)", "B, T, C"),
    "blocks.N.attn.out_proj": ("attention out (out_proj)", "B, T, C"),
    "blocks.N.ln_mlp": ("ln_mlp (LayerNorm)", "B, T, C"),
    "blocks.N.mlp.fc_in": ("MLP in (fc_in)", "B, T, mlp_width"),
    "blocks.N.mlp.gelu": ("GELU", "B, T, mlp_width"),
    "blocks.N.mlp.fc_out": ("MLP out (fc_out)", "B, T, C"),
    "blocks.N": ("block output", "B, T, C"),  # the residual stream after the block
    "ln_f": ("final LayerNorm (ln_f)", "B, T, C"),  # GPT
    "lm_head": ("logits (lm_head)", "B, T, vocab_size"),
    "pooler": ("pooler (Linear)", "B, C"),  # BERT
    "mlm_head.dense": ("MLM dense", "N, C"),  # BertForPreTraining, on the N masked positions only
    "mlm_head.gelu": ("MLM GELU", "N, C"),
    "mlm_head.ln": ("MLM LayerNorm", "N, C"),
    "mlm_head.decoder": ("MLM logits (decoder)", "N, vocab_size"),
    "nsp_head": ("NSP logits (nsp_head)", "B, 2"),
}

# Arithmetic in minilm/model/: (the function it is written in, the torch function) -> the steps of its
# 1st, 2nd, ... call in turn (Block.forward adds twice: the attention's output, then the MLP's).
OP_STEPS = {
    ("GPT.embed", "add"): [("token + position", "B, T, C")],
    ("BertEmbeddings.forward", "add"): [("word + position", "B, T, C"), ("+ segment", "B, T, C")],
    ("MultiHeadAttention._split_heads", "transpose"): [("q by head", HEADS), ("k by head", HEADS),
                                                        ("v by head", HEADS)],
    ("MultiHeadAttention._attention_probs", "div"): [("scores q·kᵀ/√head_dim", SCORES)],
    ("MultiHeadAttention._attention_probs", "softmax"): [("probs (softmax)", SCORES)],
    ("MultiHeadAttention._manual_attention", "matmul"): [("probs @ v", HEADS)],
    ("MultiHeadAttention._attend", "reshape"): [("heads side by side", "B, T, C")],
    ("Block.forward", "add"): [("x + attention", "B, T, C"), ("x + MLP", "B, T, C")],
    ("Bert.forward", "tanh"): [("pooled (tanh)", "B, C")],
    ("next_token_loss", "cross_entropy"): [("loss (next token)", "")],
    ("mlm_loss", "cross_entropy"): [("loss (masked LM)", "")],
    ("nsp_loss", "cross_entropy"): [("loss (next sentence)", "")],
}


# Llama (minilm/model/llama.py, rope.py): the rows that differ from GPT-2's, and its own. k and v have
# n_kv_head heads (C_kv = n_kv_head · head_dim features); the rotary angles are computed once, before the
# blocks; q and k are turned inside every attention; the MLP is SwiGLU; every norm is an RMSNorm.
LLAMA_MODULE_STEPS = {
    **MODULE_STEPS,
    "blocks.N.ln_attn": ("ln_attn (RMSNorm)", "B, T, C"),
    "blocks.N.attn.k_proj": ("k (k_proj)", "B, T, C_kv"),
    "blocks.N.attn.v_proj": ("v (v_proj)", "B, T, C_kv"),
    "blocks.N.ln_mlp": ("ln_mlp (RMSNorm)", "B, T, C"),
    "blocks.N.mlp.gate_proj": ("gate (gate_proj)", "B, T, mlp_width"),
    "blocks.N.mlp.up_proj": ("up (up_proj)", "B, T, mlp_width"),
    "blocks.N.mlp.down_proj": ("MLP out (down_proj)", "B, T, C"),
    "ln_f": ("final RMSNorm (ln_f)", "B, T, C"),
}
LLAMA_OP_STEPS = {
    **OP_STEPS,
    ("RotaryEmbedding.forward", "mul"): [("rotary angles position·θ_i", "1, T, head_dim/2")],
    ("RotaryEmbedding.forward", "cos"): [("rotary cos", "1, T, head_dim")],
    ("RotaryEmbedding.forward", "sin"): [("rotary sin", "1, T, head_dim")],
    ("RMSNorm.forward", "rsqrt"): [("1 / rms(x) (rsqrt)", "B, T, 1")],
    ("MultiHeadAttention._split_heads", "transpose"): [("q by head", HEADS), ("k by head", KV_HEADS),
                                                        ("v by head", KV_HEADS)],
    ("rotate_half", "cat"): [("rotate_half(q)", HEADS), ("rotate_half(k)", KV_HEADS)],
    ("apply_rotary", "add"): [("q turned (RoPE)", HEADS), ("k turned (RoPE)", KV_HEADS)],
    ("GroupedQueryAttention._share", "repeat_interleave"): [("k shared by its query heads", HEADS),
                                                            ("v shared by its query heads", HEADS)],
    ("SwiGLU.forward", "silu"): [("silu(gate)", "B, T, mlp_width")],
    ("SwiGLU.forward", "mul"): [("silu(gate) * up", "B, T, mlp_width")],
}


@dataclass
class Step:
    name: str  # "q (q_proj)", "probs (softmax)", ...
    dims: str  # what the shape's numbers are: "B, n_head, T, T_k"; "" for a scalar
    layer: int | None  # the block it ran in; None outside the blocks
    shape: tuple[int, ...]
    dtype: str
    mean: float
    std: float
    max_abs: float
    where: str  # "minilm/model/attention.py:123": the line that produced the value
    made_by: str  # the module ("blocks.0.attn.q_proj") or the torch function ("softmax")
    value: torch.Tensor = field(repr=False, compare=False)  # the tensor itself, detached

    def as_dict(self) -> dict:
        """Everything but the tensor, for JSON."""
        return {name: getattr(self, name) for name in ("name", "dims", "layer", "shape", "dtype", "mean",
                                                      "std", "max_abs", "where", "made_by")}


class ShapeTrace:
    """While inside `with ShapeTrace(model) as trace:`, every forward pass of model appends its steps to
    trace.steps. On leaving, the hooks are removed and attn_impl is put back; the model is as before."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.steps: list[Step] = []
        self.notes: list[str] = []  # what the trace changed for its duration, for the reader
        self._hook_handles = []
        self._sdpa_modules: list[MultiHeadAttention] = []
        self._layer: int | None = None  # the block running now
        self._op_calls = Counter()  # (function, torch function) -> calls seen, to pick from OP_STEPS
        llama = isinstance(model, Llama)
        self._module_steps = LLAMA_MODULE_STEPS if llama else MODULE_STEPS
        self._op_steps = LLAMA_OP_STEPS if llama else OP_STEPS
        self._mode = ModelArithmetic(self._record_op)

    def __enter__(self) -> "ShapeTrace":
        self._use_manual_attention()
        self._add_hooks()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._mode.__exit__(*exc_info)
        for handle in self._hook_handles:
            handle.remove()
        for module in self._sdpa_modules:
            module.attn_impl = "sdpa"

    def _use_manual_attention(self) -> None:
        self._sdpa_modules = [m for m in self.model.modules()
                              if isinstance(m, MultiHeadAttention) and m.attn_impl == "sdpa"]
        for module in self._sdpa_modules:
            module.attn_impl = "manual"  # the written-out path, where scores and probs exist
        if self._sdpa_modules:
            self.notes.append("the model is configured for sdpa (the fused kernel, which never forms the scores); "
                              "the trace runs the written-out attention (attn_impl manual) and puts sdpa back after")

    def _add_hooks(self) -> None:
        for name, module in self.model.named_modules():
            step_key, layer = module_key(name)
            if step_key not in self._module_steps:
                continue
            step_name, dims = self._module_steps[step_key]
            record = partial(self._record_module, name, step_name, dims)
            self._hook_handles.append(module.register_forward_hook(record))
            if isinstance(module, Block):  # so the steps inside it know which block they ran in
                self._hook_handles.append(module.register_forward_pre_hook(partial(self._enter_block, layer)))

    def _enter_block(self, layer: int, module, args) -> None:
        self._layer = layer

    def _record_module(self, name: str, step_name: str, dims: str, module, args, output) -> None:
        self._record(step_name, dims, name, output, innermost_model_frame(sys._getframe()))
        if isinstance(module, Block):
            self._layer = None  # the block output was its last step

    def _record_op(self, function: str, op: str, caller, result) -> None:
        steps = self._op_steps.get((function, op))
        if steps is None:  # a call no step is named for: view, size, masked_fill, ...
            return
        step_name, dims = steps[self._op_calls[function, op] % len(steps)]
        self._op_calls[function, op] += 1
        self._record(step_name, dims, op, result, caller)

    def _record(self, step_name: str, dims: str, made_by: str, tensor: torch.Tensor, frame) -> None:
        mean, std, max_abs = summary(tensor)
        where = "?" if frame is None else f"{relative_path(frame)}:{frame.f_lineno}"
        self.steps.append(Step(step_name, dims, self._layer, tuple(tensor.shape),
                               str(tensor.dtype).removeprefix("torch."), mean, std, max_abs, where, made_by,
                               tensor.detach()))


class ModelArithmetic(TorchFunctionMode):
    """Torch calls every torch function (F.softmax, tensor @ tensor, x + y, ...) through __torch_function__
    while this mode is on. Those called straight from minilm/model/ go to on_op(function, op, frame,
    result); the rest (torch's own modules, PEFT code, the tracer's statistics) only run."""

    def __init__(self, on_op):
        super().__init__()
        self.on_op = on_op

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))  # the mode is off inside here, so this is not seen again
        caller = first_frame_outside_torch(sys._getframe(1))
        if caller is not None and in_model(caller) and isinstance(result, torch.Tensor):
            self.on_op(caller.f_code.co_qualname, getattr(func, "__name__", ""), caller, result)
        return result


def module_key(name: str) -> tuple[str, int | None]:
    """A module's name as MODULE_STEPS writes it, and its block:
    "blocks.3.attn.q_proj" -> ("blocks.N.attn.q_proj", 3); "ln_f" -> ("ln_f", None).
    BertForPreTraining holds its Bert as .bert, so "bert.embeddings.word" is "embeddings.word"."""
    name = name.removeprefix("bert.")
    match = re.match(r"blocks\.(\d+)", name)
    if match is None:
        return name, None
    return "blocks.N" + name[match.end():], int(match[1])


@lru_cache(maxsize=None)  # asked on every torch call: look each file up once
def file_in(filename: str, folder: Path) -> bool:
    return Path(filename).resolve().is_relative_to(folder)


def in_model(frame) -> bool:
    return file_in(frame.f_code.co_filename, MODEL_DIR)


def first_frame_outside_torch(frame):
    """The code that called a torch function: F.softmax, say, runs through torch's own Python first."""
    while frame is not None and file_in(frame.f_code.co_filename, TORCH_DIR):
        frame = frame.f_back
    return frame


def innermost_model_frame(frame):
    """From inside a hook: the line of minilm/model/ that called the module (`self.q_proj(x)`)."""
    while frame is not None and not in_model(frame):
        frame = frame.f_back
    return frame


def relative_path(frame) -> Path:
    return Path(frame.f_code.co_filename).resolve().relative_to(REPO_ROOT)  # minilm/model/attention.py


def summary(tensor: torch.Tensor) -> tuple[float, float, float]:
    """(mean, std, max |x|), in float64 whatever the dtype; std over all elements (0 for one)."""
    x = tensor.detach().double()
    return x.mean().item(), x.std(correction=0).item(), x.abs().max().item()
