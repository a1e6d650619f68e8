"""Checkpoints: a folder with the weights, the configs and (optionally) the training state.

    ckpt/model.safetensors   the model's weights (safetensors: loading them cannot run code)
    ckpt/config.json         {"model_class": ..., "model": {...}, "train": {...}, ...}
    ckpt/train_state.pt      optimizer, grad scaler, RNG states, step, data position; read back with
                             torch.load(weights_only=True), which refuses anything but tensors and
                             plain containers

A checkpoint is written to a temporary folder first and then swapped in with renames
(common/atomic.py), so a crash part-way leaves the previous checkpoint readable (as `ckpt`, or as
`ckpt.old` for the instant between the two renames, which `resolve_checkpoint` and
`checkpoint_to_resume` also accept).
"""

import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from common.atomic import replace_folder_atomic
from common.errors import CheckpointError
from common.finite import refuse_non_finite

from ..compress.pruned import build_model
from ..compress.quantize import QuantizationRecord, int8_shell, is_quantized
from ..model import (GPT, Bert, BertConfig, BertForMaskedLM, BertForPreTraining, Electra, ElectraConfig, GPTConfig, Llama,
                     LlamaConfig)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAIN_STATE = "train_state.pt"


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def model_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights to save: wrapper prefixes never reach the file, and a tied matrix is stored once."""
    state, seen = {}, set()
    for name, tensor in unwrap_model(model).state_dict().items():
        if tensor.data_ptr() in seen:  # e.g. GPT's lm_head.weight is wte.weight
            continue
        seen.add(tensor.data_ptr())
        state[name] = tensor.detach().contiguous().cpu()
    return state


def save_checkpoint(folder, model, config: dict, train_state: dict | None = None, write_extra=None) -> Path:
    """Write model weights, config and training state to `folder`, atomically.

    write_extra(tmp_folder), if given, adds files (e.g. the tokenizer) before the swap. A full disk raises
    OSError(ENOSPC) whichever file it hits (see _save_weights and _save_train_state).
    """
    def write(tmp: Path) -> None:
        _save_weights(model_state_dict(model), tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2))
        if train_state is not None:
            _save_train_state(train_state, tmp / TRAIN_STATE)
        if write_extra is not None:
            write_extra(tmp)

    return replace_folder_atomic(folder, write)


def _save_weights(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors' save_file, whose I/O failures come back as the OSError they are: safetensors reports
    them as SafetensorError("... No space left on device (os error 28)")."""
    try:
        save_file(state_dict, path)
    except SafetensorError as err:
        code = re.search(r"\(os error (\d+)\)", str(err))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from err


def _save_train_state(train_state: dict, path: Path) -> None:
    """torch.save through a Python file: a full disk then raises OSError(ENOSPC) like any other write.
    Given a path, torch writes from C++ and reports it as RuntimeError("[enforce fail at
    inline_container.cc:...] . unexpected pos ..."); so does its archive writer when it closes after a
    failed write, and then the OSError is that RuntimeError's context."""
    with open(path, "wb") as f:
        try:
            torch.save(train_state, f)
        except RuntimeError as err:
            if isinstance(err.__context__, OSError):
                raise err.__context__ from None
            raise


def resolve_checkpoint(folder, needs: tuple[str, ...] = (CONFIG, WEIGHTS)) -> Path:
    """The folder to read: `folder` when it holds the files `needs` names, else `folder.old` when that does.

    A save swaps a new folder in with two renames (folder -> folder.old, new -> folder, common/atomic.py),
    so a crash between them leaves only folder.old, the previous checkpoint, whole. A folder with a config
    but not all of `needs`, and no whole .old beside it, is returned as it is: the loader names what is missing.
    """
    folder = Path(folder)
    old = folder.with_name(folder.name + ".old")
    for candidate in (folder, old):
        if all((candidate / name).is_file() for name in needs):
            return candidate
    if (folder / CONFIG).exists():
        return folder
    raise CheckpointError(f"no checkpoint at {folder} (expected {CONFIG} and {WEIGHTS} inside); "
                          "check the path, or train first")


def checkpoint_to_resume(out_dir) -> Path:
    """The checkpoint a --resume continues from: out_dir/ckpt, or out_dir/ckpt.old when a crash between
    the two renames of a save left only that. Every reader of a resumed run (the configs, the tokenizer,
    the weights and training state) goes through here, so all of them read the same folder."""
    return resolve_checkpoint(Path(out_dir) / "ckpt", needs=(CONFIG, WEIGHTS, TRAIN_STATE))


def load_checkpoint(folder, with_train_state: bool = True):
    """Returns (state_dict, config dict, train_state or None). Raises CheckpointError if corrupt."""
    folder = resolve_checkpoint(folder)
    try:
        config = json.loads((folder / CONFIG).read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{folder / CONFIG} is not valid JSON ({err}); the checkpoint is corrupt") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{folder / CONFIG} holds a JSON {type(config).__name__}, not the object of settings "
                              "minilm writes; the checkpoint is corrupt or not one of minilm's")
    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{folder / WEIGHTS} is missing: the folder has a config but no weights; restore the "
                              "file or resume from another checkpoint")
    try:
        state_dict = load_file(folder / WEIGHTS)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{folder / WEIGHTS} is corrupt or truncated ({err}); delete the folder "
                              "or resume from another checkpoint") from None
    refuse_non_finite(state_dict, folder / WEIGHTS)
    train_state = None
    if with_train_state:
        if not (folder / TRAIN_STATE).exists():
            raise CheckpointError(f"{folder} has no {TRAIN_STATE}: it holds weights only and cannot be resumed")
        try:
            train_state = torch.load(folder / TRAIN_STATE, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated zip, or a pickle weights_only refuses
            raise CheckpointError(f"{folder / TRAIN_STATE} could not be read safely ({err}); "
                                  "the checkpoint is corrupt or not one of minilm's") from None
    return state_dict, config, train_state


# config.json's model_class -> (the model, its config dataclass): what train_gpt.py and train_bert.py save
# (train_bert.py: one class per objective, minilm/training/objectives.py).
MODEL_CLASSES = {"GPT": (GPT, GPTConfig), "Llama": (Llama, LlamaConfig), "Bert": (Bert, BertConfig),
                 "BertForPreTraining": (BertForPreTraining, BertConfig),
                 "BertForMaskedLM": (BertForMaskedLM, BertConfig), "Electra": (Electra, ElectraConfig)}


def saved_model(folder, config: dict, state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Rebuild the model a checkpoint's config.json describes ("model_class", one of MODEL_CLASSES, and
    "model", its config fields) and load the checkpoint's weights into it. Callers check the class first.
    A pruned model's config lists its heads per layer; a quantized one's "quantization" says how its int8
    tensors were made, and the float model gets int8 modules to load them into (minilm/compress/)."""
    model_cls, config_cls = MODEL_CLASSES[config["model_class"]]
    try:
        model = build_model(model_cls, config_cls, config["model"])  # a pruned model in its pruned shape
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{Path(folder) / CONFIG}: no valid 'model' settings ({err}); the checkpoint is "
                              "corrupt or not one of minilm's") from None
    if is_quantized(config):
        int8_shell(model, QuantizationRecord.from_config(config, str(Path(folder) / CONFIG)))
    load_model_weights(model, state_dict)
    return model


def load_model_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load saved weights, accepting only tied matrices as missing; name any other mismatch."""
    model = unwrap_model(model)
    expected = model.state_dict()
    for name, tensor in state_dict.items():
        if name in expected and expected[name].shape != tensor.shape:
            raise CheckpointError(f"tensor {name}: checkpoint has shape {tuple(tensor.shape)}, "
                                  f"model expects {tuple(expected[name].shape)}; the configs differ")
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    tied = tied_names(model)
    missing = [name for name in missing if name not in tied]
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not fit the model: missing {missing}, unexpected {unexpected}")


def tied_names(model) -> set[str]:
    """Names of parameters that share storage with an earlier parameter (and so are not saved)."""
    seen, tied = set(), set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:
            tied.add(name)
        seen.add(tensor.data_ptr())
    return tied
