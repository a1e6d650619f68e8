"""Hugging Face GPT-2 and BERT folders in and out, without transformers (docs/hf_weights.md).

A Hugging Face model folder holds config.json and the weights: model.safetensors, or the older
pytorch_model.bin (a pickle, read with weights_only=True so it cannot run code). Loading is:

    1. config.json -> GPTConfig / BertConfig             config_from_hf
    2. read the tensors, safely                           read_weights
    3. rename each tensor through NAME_TABLE              load_hf_state_dict
       (GPT-2's Conv1D weights are stored (in, out), nn.Linear's (out, in): transpose them;
        GPT-2 keeps q, k, v in one c_attn matrix: split it in three)

save_pretrained runs the same table backwards. `python -m minilm.hf` prints the table.
"""

import json
import os
import pickle
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .bert import Bert, BertForPreTraining
from .checkpoint import CheckpointError
from .config import BertConfig, GPTConfig
from .gpt import GPT


COPY = "copy"
TRANSPOSE = "transposed (Conv1D)"
SPLIT = "split in 3 (q, k, v)"
SPLIT_TRANSPOSE = "split in 3, transposed (Conv1D)"
TIED = "tied"


@dataclass(frozen=True)
class Row:
    model: str  # "GPT", "Bert", or "BertForPreTraining" (its heads; its backbone is Bert's rows)
    hf: str  # name in a Hugging Face file, without the "transformer." / "bert." prefix; {i}: the layer
    minilm: str  # name in minilm's state_dict; {q,k,v}: one tensor split into three
    how: str
    tied_to: str = ""  # for TIED rows: the Hugging Face name of the embedding this weight shares

    def describe_how(self) -> str:
        return f"tied to {self.tied_to} (may be absent from the file)" if self.how == TIED else self.how


# The one name table: a row per tensor, for both directions (docs/hf_weights.md shows it).
NAME_TABLE = [Row(*fields) for fields in [
    ("GPT", "wte.weight", "wte.weight", COPY),
    ("GPT", "wpe.weight", "wpe.weight", COPY),
    ("GPT", "h.{i}.ln_1.weight", "blocks.{i}.ln_attn.weight", COPY),
    ("GPT", "h.{i}.ln_1.bias", "blocks.{i}.ln_attn.bias", COPY),
    ("GPT", "h.{i}.attn.c_attn.weight", "blocks.{i}.attn.{q,k,v}_proj.weight", SPLIT_TRANSPOSE),
    ("GPT", "h.{i}.attn.c_attn.bias", "blocks.{i}.attn.{q,k,v}_proj.bias", SPLIT),
    ("GPT", "h.{i}.attn.c_proj.weight", "blocks.{i}.attn.out_proj.weight", TRANSPOSE),
    ("GPT", "h.{i}.attn.c_proj.bias", "blocks.{i}.attn.out_proj.bias", COPY),
    ("GPT", "h.{i}.ln_2.weight", "blocks.{i}.ln_mlp.weight", COPY),
    ("GPT", "h.{i}.ln_2.bias", "blocks.{i}.ln_mlp.bias", COPY),
    ("GPT", "h.{i}.mlp.c_fc.weight", "blocks.{i}.mlp.fc_in.weight", TRANSPOSE),
    ("GPT", "h.{i}.mlp.c_fc.bias", "blocks.{i}.mlp.fc_in.bias", COPY),
    ("GPT", "h.{i}.mlp.c_proj.weight", "blocks.{i}.mlp.fc_out.weight", TRANSPOSE),
    ("GPT", "h.{i}.mlp.c_proj.bias", "blocks.{i}.mlp.fc_out.bias", COPY),
    ("GPT", "ln_f.weight", "ln_f.weight", COPY),
    ("GPT", "ln_f.bias", "ln_f.bias", COPY),
    ("GPT", "lm_head.weight", "lm_head.weight", TIED, "wte.weight"),
    ("Bert", "embeddings.word_embeddings.weight", "embeddings.word.weight", COPY),
    ("Bert", "embeddings.position_embeddings.weight", "embeddings.position.weight", COPY),
    ("Bert", "embeddings.token_type_embeddings.weight", "embeddings.token_type.weight", COPY),
    ("Bert", "embeddings.LayerNorm.weight", "embeddings.ln.weight", COPY),
    ("Bert", "embeddings.LayerNorm.bias", "embeddings.ln.bias", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.query.weight", "blocks.{i}.attn.q_proj.weight", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.query.bias", "blocks.{i}.attn.q_proj.bias", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.key.weight", "blocks.{i}.attn.k_proj.weight", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.key.bias", "blocks.{i}.attn.k_proj.bias", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.value.weight", "blocks.{i}.attn.v_proj.weight", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.value.bias", "blocks.{i}.attn.v_proj.bias", COPY),
    ("Bert", "encoder.layer.{i}.attention.output.dense.weight", "blocks.{i}.attn.out_proj.weight", COPY),
    ("Bert", "encoder.layer.{i}.attention.output.dense.bias", "blocks.{i}.attn.out_proj.bias", COPY),
    ("Bert", "encoder.layer.{i}.attention.output.LayerNorm.weight", "blocks.{i}.ln_attn.weight", COPY),
    ("Bert", "encoder.layer.{i}.attention.output.LayerNorm.bias", "blocks.{i}.ln_attn.bias", COPY),
    ("Bert", "encoder.layer.{i}.intermediate.dense.weight", "blocks.{i}.mlp.fc_in.weight", COPY),
    ("Bert", "encoder.layer.{i}.intermediate.dense.bias", "blocks.{i}.mlp.fc_in.bias", COPY),
    ("Bert", "encoder.layer.{i}.output.dense.weight", "blocks.{i}.mlp.fc_out.weight", COPY),
    ("Bert", "encoder.layer.{i}.output.dense.bias", "blocks.{i}.mlp.fc_out.bias", COPY),
    ("Bert", "encoder.layer.{i}.output.LayerNorm.weight", "blocks.{i}.ln_mlp.weight", COPY),
    ("Bert", "encoder.layer.{i}.output.LayerNorm.bias", "blocks.{i}.ln_mlp.bias", COPY),
    ("Bert", "pooler.dense.weight", "pooler.weight", COPY),
    ("Bert", "pooler.dense.bias", "pooler.bias", COPY),
    ("BertForPreTraining", "cls.predictions.transform.dense.weight", "mlm_head.dense.weight", COPY),
    ("BertForPreTraining", "cls.predictions.transform.dense.bias", "mlm_head.dense.bias", COPY),
    ("BertForPreTraining", "cls.predictions.transform.LayerNorm.weight", "mlm_head.ln.weight", COPY),
    ("BertForPreTraining", "cls.predictions.transform.LayerNorm.bias", "mlm_head.ln.bias", COPY),
    ("BertForPreTraining", "cls.predictions.bias", "mlm_head.decoder.bias", COPY),
    ("BertForPreTraining", "cls.predictions.decoder.weight", "mlm_head.decoder.weight", TIED,
     "embeddings.word_embeddings.weight"),
    ("BertForPreTraining", "cls.seq_relationship.weight", "nsp_head.weight", COPY),
    ("BertForPreTraining", "cls.seq_relationship.bias", "nsp_head.bias", COPY),
]]

# Buffers some files carry that are not weights: GPT-2's causal mask (attn.bias) and masking
# constant (attn.masked_bias), BERT's 0..511 position index. Recomputed by minilm, so skipped.
IGNORED_BUFFERS = [r"h\.\d+\.attn\.bias", r"h\.\d+\.attn\.masked_bias", r"embeddings\.position_ids"]
# Older names for the same tensors: TF-era LayerNorm gamma/beta, and the MLM decoder's bias, which
# older files store twice (transformers ties cls.predictions.decoder.bias to cls.predictions.bias).
LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}
LEGACY_NAMES = {"cls.predictions.decoder.bias": "cls.predictions.bias"}
HEADS = ("mlm_head", "nsp_head")  # BertForPreTraining's heads: may be absent, then freshly initialised


@dataclass(frozen=True)
class Mapping:
    """One row of NAME_TABLE made concrete for one layer of one model."""
    hf: str  # without prefix
    file_prefix: str  # what save_pretrained puts in front: "transformer.", "bert." or ""
    minilm: tuple[str, ...]  # one name, or three for a split
    how: str
    tied_to: str


def _family(model_or_cls) -> str:
    cls = model_or_cls if isinstance(model_or_cls, type) else type(model_or_cls)
    if issubclass(cls, GPT):
        return "gpt2"
    if issubclass(cls, (Bert, BertForPreTraining)):
        return "bert"
    raise TypeError(f"{cls.__name__} has no Hugging Face mapping; use GPT, Bert or BertForPreTraining")


def mappings_for(model) -> list[Mapping]:
    """Expand NAME_TABLE for this model: one Mapping per Hugging Face tensor."""
    if not model.config.bias:
        raise ValueError(f"this {type(model).__name__} has bias=False, but Hugging Face GPT-2 and BERT checkpoints "
                         "have a bias in every Linear and LayerNorm: only bias=True models map onto them")
    if isinstance(model, GPT):
        parts = [("GPT", "", "transformer.")]  # (table rows, minilm prefix, file prefix)
    elif isinstance(model, BertForPreTraining):
        parts = [("Bert", "bert.", "bert."), ("BertForPreTraining", "", "")]
    else:
        parts = [("Bert", "", "")]
    out = []
    for part, minilm_prefix, file_prefix in parts:
        for row in (r for r in NAME_TABLE if r.model == part):
            for i in range(model.config.n_layer) if "{i}" in row.hf else [None]:
                hf, minilm = row.hf.replace("{i}", str(i)), row.minilm.replace("{i}", str(i))
                names = [minilm.replace("{q,k,v}", p) for p in "qkv"] if "{q,k,v}" in minilm else [minilm]
                out.append(Mapping(hf, file_prefix, tuple(minilm_prefix + n for n in names), row.how, row.tied_to))
    return out


def _to_hf(how: str, tensors: list[torch.Tensor]) -> torch.Tensor:
    """minilm tensor(s) -> the Hugging Face tensor. nn.Linear stores (out, in), Conv1D (in, out)."""
    if how in (SPLIT, SPLIT_TRANSPOSE):
        joined = torch.cat(tensors, dim=0)  # q, k, v stacked: (3C, C) weight or (3C,) bias
        return joined.t() if how == SPLIT_TRANSPOSE else joined  # weight -> (C, 3C)
    return tensors[0].t() if how == TRANSPOSE else tensors[0]


def _from_hf(how: str, tensor: torch.Tensor) -> list[torch.Tensor]:
    """The Hugging Face tensor -> minilm tensor(s): the inverse of _to_hf."""
    if how in (SPLIT, SPLIT_TRANSPOSE):
        stacked = tensor.t() if how == SPLIT_TRANSPOSE else tensor  # (3C, C) or (3C,)
        return list(stacked.chunk(3, dim=0))
    return [tensor.t() if how == TRANSPOSE else tensor]


def to_hf_state_dict(model) -> dict[str, torch.Tensor]:
    """The model's weights under Hugging Face names (with the file prefix); tied copies left out."""
    params = model.state_dict()
    return {m.file_prefix + m.hf: _to_hf(m.how, [params[n] for n in m.minilm])
            for m in mappings_for(model) if m.how != TIED}


# ---------------------------------------------------------------------------------------- loading

def load_pretrained(cls, path):
    """Build cls (GPT, Bert or BertForPreTraining) from a Hugging Face folder, in eval mode."""
    folder = _existing_folder(path)
    config = config_from_hf(read_config(folder), _family(cls), folder)
    model = cls(config)
    load_hf_state_dict(model, read_weights(folder), source=str(folder))
    return model.eval()  # like transformers: loaded for inference; call .train() to fine-tune


def load_hf_state_dict(model, checkpoint: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Copy Hugging Face-named tensors into model, checking names, shapes and ties first."""
    tensors = _canonical_names(checkpoint, _family(model))
    mappings = mappings_for(model)
    params = model.state_dict()  # shares storage with the parameters: copy_ below writes into the model
    _check_names(model, mappings, tensors, source, example_keys=sorted(checkpoint)[:4])
    for m in mappings:
        if m.hf in tensors:
            _check_shape_and_tie(m, tensors, params, source)
    with torch.no_grad():
        for m in mappings:
            if m.how != TIED and m.hf in tensors:
                for name, tensor in zip(m.minilm, _from_hf(m.how, tensors[m.hf])):
                    params[name].copy_(tensor)  # also casts, e.g. float16 files into a float32 model


def _check_names(model, mappings: list[Mapping], tensors, source: str, example_keys: list[str]) -> None:
    """Missing backbone tensors are an error; missing heads and unused tensors are warnings."""
    missing = [m for m in mappings if m.how != TIED and m.hf not in tensors]
    missing_backbone = [m.hf for m in missing if m.minilm[0].split(".")[0] not in HEADS]
    if missing_backbone:
        raise CheckpointError(
            f"{source}: {len(missing_backbone)} tensor(s) the model needs are missing, e.g. "
            f"{missing_backbone[:6]}; the file has e.g. {example_keys}. Is it a "
            f"{_family(model)} checkpoint of the shape config.json describes?")
    unexpected = sorted(set(tensors) - {m.hf for m in mappings})
    if unexpected:
        warnings.warn(f"{source}: {len(unexpected)} tensor(s) not used by {type(model).__name__}: "
                      f"{unexpected[:10]}", stacklevel=5)  # point at the caller of from_pretrained
    fresh_heads = sorted({m.minilm[0].split(".")[0] for m in missing})
    if fresh_heads:
        warnings.warn(f"{source} has no weights for {', '.join(fresh_heads)}: freshly initialised, "
                      "train them before use", stacklevel=5)  # point at the caller of from_pretrained


def _canonical_names(checkpoint, family: str) -> dict[str, torch.Tensor]:
    """Strip the model prefix, rename legacy names, drop the buffers that are not weights."""
    prefix = "transformer." if family == "gpt2" else "bert."
    tensors = {}
    for key, tensor in checkpoint.items():
        name = key.removeprefix(prefix)
        for old, new in LEGACY_SUFFIXES.items():
            name = name[: -len(old)] + new if name.endswith(old) else name
        is_buffer = any(re.fullmatch(pattern, name) for pattern in IGNORED_BUFFERS)
        # A legacy name whose tensor the file also stores under the new name is a second copy.
        is_duplicate = name in LEGACY_NAMES and LEGACY_NAMES[name] in checkpoint
        if not (is_buffer or is_duplicate):
            tensors[LEGACY_NAMES.get(name, name)] = tensor
    return tensors


def _check_shape_and_tie(m: Mapping, tensors, params, source: str) -> None:
    got = tensors[m.hf]
    if m.how == TIED:
        if m.tied_to in tensors and not torch.equal(got, tensors[m.tied_to]):
            raise CheckpointError(f"{source}: {m.hf} differs from {m.tied_to}, but minilm ties the two "
                                  "(one shared matrix); this checkpoint was trained untied")
        return
    want = _to_hf(m.how, [params[n] for n in m.minilm]).shape  # the shape this model would save
    if got.shape != want:
        raise CheckpointError(
            f"{source}: tensor {m.hf!r} has shape {tuple(got.shape)} in the file but minilm expects "
            f"{tuple(want)} (for {', '.join(m.minilm)}); does config.json describe these weights?")


def _existing_folder(path) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass a Hugging Face model folder holding "
                                "config.json and model.safetensors (or pytorch_model.bin)")
    return folder


def read_config(folder: Path) -> dict:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder} has no config.json; a Hugging Face model folder needs one")
    try:
        return json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_path} is not valid JSON ({err}); re-download or rewrite it") from err


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """model.safetensors if present, else pytorch_model.bin through torch.load(weights_only=True)."""
    safetensors_path, pickle_path = folder / "model.safetensors", folder / "pytorch_model.bin"
    if safetensors_path.is_file():
        try:
            return load_file(safetensors_path)
        except SafetensorError as err:
            raise CheckpointError(f"{safetensors_path} is not a readable safetensors file ({err}); it may be "
                                  "truncated or corrupt: download or save it again") from err
    if pickle_path.is_file():
        return _read_pickle(pickle_path)
    if any(folder.glob("*.index.json")):
        raise CheckpointError(f"{folder} holds a sharded checkpoint (*.index.json); minilm reads a single "
                              "model.safetensors or pytorch_model.bin: save it unsharded")
    raise CheckpointError(f"{folder} has no weights: expected model.safetensors or pytorch_model.bin, "
                          f"found {sorted(p.name for p in folder.iterdir())}")


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: torch.load(weights_only=True) refused it: the pickle holds objects other than tensors, "
            "and unpickling those could run code. Convert a file you trust to model.safetensors") from err
    except (RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({err}); it may be truncated") from err
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise CheckpointError(f"{path} does not hold a flat dict of name -> tensor (a state_dict)")
    return state


# ---------------------------------------------------------------------------------------- configs

# (Hugging Face key, minilm field, transformers' default when the key is absent)
GPT2_CONFIG_KEYS = [
    ("vocab_size", "vocab_size", 50257), ("n_positions", "block_size", 1024), ("n_layer", "n_layer", 12),
    ("n_head", "n_head", 12), ("n_embd", "n_embd", 768), ("n_inner", "n_inner", None),
    ("resid_pdrop", "dropout", 0.1), ("attn_pdrop", "attn_dropout", 0.1),
    ("layer_norm_epsilon", "layer_norm_eps", 1e-5), ("initializer_range", "init_std", 0.02),
]
BERT_CONFIG_KEYS = [
    ("vocab_size", "vocab_size", 30522), ("max_position_embeddings", "block_size", 512),
    ("num_hidden_layers", "n_layer", 12), ("num_attention_heads", "n_head", 12),
    ("hidden_size", "n_embd", 768), ("intermediate_size", "n_inner", 3072),
    ("hidden_dropout_prob", "dropout", 0.1), ("attention_probs_dropout_prob", "attn_dropout", 0.1),
    ("layer_norm_eps", "layer_norm_eps", 1e-12), ("initializer_range", "init_std", 0.02),
    ("type_vocab_size", "type_vocab_size", 2), ("pad_token_id", "pad_token_id", 0),
]
# Hugging Face activation names -> torch's GELU approximation.
GELU_NAMES = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "gelu": "none"}
# Options minilm does not implement: (key, the value minilm's model matches).
GPT2_FIXED = [("add_cross_attention", False), ("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False)]
BERT_FIXED = [("add_cross_attention", False), ("is_decoder", False), ("position_embedding_type", "absolute")]


def config_from_hf(hf: dict, family: str, folder: Path | str = "config.json"):
    """A transformers config.json dict -> GPTConfig or BertConfig; refuses what minilm cannot run."""
    model_type = hf.get("model_type")
    if model_type != family:
        other = {"gpt2": "GPT.from_pretrained", "bert": "Bert.from_pretrained"}.get(model_type)
        hint = f"; load it with {other}" if other else "; minilm reads only gpt2 and bert folders"
        raise CheckpointError(f"{folder}: config.json has model_type {model_type!r}, expected {family!r}{hint}")
    keys, fixed, act_key = ((GPT2_CONFIG_KEYS, GPT2_FIXED, "activation_function") if family == "gpt2"
                            else (BERT_CONFIG_KEYS, BERT_FIXED, "hidden_act"))
    for key, supported in fixed:
        if hf.get(key, supported) != supported:
            raise CheckpointError(f"{folder}: config.json sets {key}={hf[key]!r}; minilm implements only "
                                  f"{key}={supported!r}")
    activation = hf.get(act_key, "gelu_new" if family == "gpt2" else "gelu")
    if activation not in GELU_NAMES:
        raise CheckpointError(f"{folder}: {act_key}={activation!r} is not supported; minilm's MLP uses GELU "
                              f"({', '.join(GELU_NAMES)})")
    values = {field: hf.get(key, default) for key, field, default in keys}
    config_cls = GPTConfig if family == "gpt2" else BertConfig
    return config_cls(**values, gelu_approximate=GELU_NAMES[activation])


def config_to_hf(model) -> dict:
    """The config.json transformers needs to rebuild the model."""
    config, family = model.config, _family(model)
    keys = GPT2_CONFIG_KEYS if family == "gpt2" else BERT_CONFIG_KEYS
    hf = {key: getattr(config, field) for key, field, _ in keys}
    gelu = {"tanh": "gelu_new", "none": "gelu"}[config.gelu_approximate]
    if family == "gpt2":
        architecture = "GPT2LMHeadModel"
        hf.update(activation_function=gelu, embd_pdrop=config.dropout)  # minilm: one dropout rate
    else:
        architecture = "BertForPreTraining" if isinstance(model, BertForPreTraining) else "BertModel"
        hf.update(hidden_act=gelu, position_embedding_type="absolute")
    return {"model_type": family, "architectures": [architecture], **hf, "tie_word_embeddings": True}


# ---------------------------------------------------------------------------------------- saving

def save_pretrained(model, path) -> None:
    """Write config.json and model.safetensors under Hugging Face names, each file atomically."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    # safetensors refuses views and shared storage: give each tensor its own contiguous copy.
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in to_hf_state_dict(model).items()}
    _write_atomically(folder / "model.safetensors",
                      lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    config_json = json.dumps(config_to_hf(model), indent=2) + "\n"
    _write_atomically(folder / "config.json", lambda tmp: tmp.write_text(config_json))


def _write_atomically(target: Path, write) -> None:
    tmp = target.with_name(target.name + ".partial")
    write(tmp)
    os.replace(tmp, target)  # a reader sees the old file or the whole new one, never half


# ---------------------------------------------------------------------------------------- the table

def format_table() -> str:
    """NAME_TABLE as Markdown, exactly as docs/hf_weights.md shows it."""
    lines = ["| minilm class | Hugging Face name | minilm name | how |", "|---|---|---|---|"]
    lines += [f"| {r.model} | `{r.hf}` | `{r.minilm}` | {r.describe_how()} |" for r in NAME_TABLE]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(format_table())
