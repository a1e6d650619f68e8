"""A checkpoint's config.json, checked before anything is built from it: one check for every reader.

train_gpt.py and train_bert.py write config.json whole; a file damaged or edited by hand can lack its keys or
hold values of the wrong type. sample.py reads the model from it, --resume (resume.py) the model and the run's
settings; both call check_saved_config first, which raises the CheckpointError saved_model raises for the
server and export (a "model" that does not build), and resume.resumed_config checks each section it takes
(check_section). A key that is merely missing inside a section is not an error: a checkpoint written before
a field existed gets its default.
"""

import dataclasses
import types
import typing
from pathlib import Path

import torch

from common.errors import CheckpointError

from ..compress.pruned import build_model
from .checkpoint import CONFIG, MODEL_CLASSES
from .train_config import TrainConfig

SECTIONS = ("data", "train", "toy")  # a run's settings besides its model's, each an object when present


def check_saved_config(folder, config: dict) -> None:
    """Refuse a config.json whose "model_class" minilm does not build, whose "model" settings do not build
    that class, or whose run settings are not objects of the right types, naming the file and the key."""
    where = Path(folder) / CONFIG
    name = config.get("model_class")
    if not isinstance(name, str) or name not in MODEL_CLASSES:
        what = "names no model_class" if name is None else f"has model_class {name!r}"
        raise CheckpointError(f"{where} {what}, so it is not a checkpoint of train_gpt.py or train_bert.py (those "
                              f"name one of {', '.join(MODEL_CLASSES)}); the file is damaged, or the folder is "
                              "another kind (a finetune.py checkpoint names its task, a Hugging Face folder its "
                              "model_type)")
    if not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{where} has no 'model' settings (an object of {name}'s config fields); the file is "
                              "damaged: restore it, or use another checkpoint")
    try:
        with torch.device("meta"):  # the checks of a real build, without allocating the weights
            build_model(*MODEL_CLASSES[name], config["model"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: no valid 'model' settings ({err}); the file is damaged or not minilm's") \
            from None
    for section in SECTIONS:
        if not isinstance(config.get(section, {}), dict):
            raise CheckpointError(f"{where}: '{section}' is {config[section]!r}, not an object of settings; the "
                                  "file is damaged: restore it, or start afresh with --overwrite")
    if not isinstance(config.get("data_sha256", ""), str):
        raise CheckpointError(f"{where}: 'data_sha256' is {config['data_sha256']!r}, not a sha256 in hex")
    unknown = sorted(set(config.get("train", {})) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise CheckpointError(f"{where}: 'train' holds {unknown}, which are not TrainConfig settings; the file is "
                              "damaged or was edited: correct it, or start afresh with --overwrite")
    check_section(TrainConfig, config.get("train", {}), where)


def check_section(config, saved: dict, where="the checkpoint's config.json") -> None:
    """Refuse a value of saved (a section of config.json) that cannot be the field of config (a config
    dataclass, or an instance) it is saved for; keys without a field are left to the caller."""
    hints = typing.get_type_hints(config if isinstance(config, type) else type(config))
    for key, value in saved.items():
        if key in hints and not fits(hints[key], value):
            raise CheckpointError(f"{where}: {key} is {value!r}, not a {_name(hints[key])}; the file is damaged or "
                                  "was edited: correct it, or start afresh with --overwrite")


def fits(kind, value) -> bool:
    """Whether value, as JSON holds it, can be a field of type kind (bool, int, float, str, list, X | None;
    an int is a float too, a bool is not a number). Other kinds are not checked."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return any(fits(member, value) for member in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind in (int, float):
        return isinstance(value, int if kind is int else (int, float)) and not isinstance(value, bool)
    origin = typing.get_origin(kind) or kind
    return isinstance(value, origin) if isinstance(origin, type) else True


def _name(kind) -> str:
    return getattr(kind, "__name__", str(kind))
