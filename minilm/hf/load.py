"""Hugging Face folders in, without transformers (docs/hf_weights.md): GPT-2, Llama, BERT, DistilBERT,
RoBERTa, ALBERT and ELECTRA.

A Hugging Face model folder holds config.json and the weights: model.safetensors, or the older
pytorch_model.bin (a pickle, read with weights_only=True so it cannot run code). Loading is:

    1. config.json -> GPTConfig / LlamaConfig / BertConfig  config_from_hf (configs.py, configs_llama.py)
       (the family fixes what the file does not say: e.g. RoBERTa's positions, ALBERT's shared layers)
    2. read the tensors, safely                           read_weights
    3. rename each tensor through NAME_TABLE              load_hf_state_dict (the table: names.py)
"""

import json
import pickle
import re
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from common.errors import CheckpointError, MissingFileError
from common.finite import refuse_non_finite

from .configs import config_from_hf, loader_hint
from .families import ARCHITECTURES, FAMILIES, family_of, folder_architecture
from .names import FILE_PREFIXES, IGNORED_BUFFERS, LEGACY_NAMES, LEGACY_SUFFIXES, OPTIONAL_PARTS, TIED, Mapping, \
    from_hf, mappings_for, to_hf


def from_pretrained(path, model_class=None):
    """Build a minilm model from a Hugging Face folder, in eval mode.

    model_class says which to build: GPT, Llama, Bert, BertForMaskedLM, BertForPreTraining or
    ElectraDiscriminator. By default config.json decides, as transformers' AutoModel does (families.py,
    ARCHITECTURES): gpt2 -> GPT; llama -> Llama; RobertaForMaskedLM, AlbertForMaskedLM, ElectraForMaskedLM
    -> BertForMaskedLM; BertForPreTraining, AlbertForPreTraining -> BertForPreTraining; ElectraForPreTraining
    -> ElectraDiscriminator; any other class of a BERT-style family -> Bert, the encoder. A Bert can be read
    from a folder with heads (they are left out), and a model with heads from an encoder's folder (the heads
    start fresh, with a warning). (A GGUF file: minilm.from_pretrained, the package's, reads that too.)
    """
    folder = _existing_folder(path)
    hf_config = read_config(folder)
    family = hf_config.get("model_type")
    if model_class is None:
        if family not in FAMILIES:
            raise CheckpointError(f"{folder}: config.json has model_type {family!r}{loader_hint(hf_config)}")
        model_class = folder_architecture(hf_config).minilm_class
    arch = _architecture_reading(family, model_class, hf_config, folder)
    model = model_class(config_from_hf(hf_config, family, folder, pooler=arch.pooler))
    if family_of(model) != family:
        raise CheckpointError(f"{folder}: this {family} config.json gives a model of another shape (e.g. "
                              f"type_vocab_size={model.config.type_vocab_size}), one minilm reads and writes as "
                              f"{family_of(model)}; only {family} models of transformers' own shape load")
    load_hf_state_dict(model, read_weights(folder), source=str(folder))
    return model.eval()  # like transformers: loaded for inference; call .train() to fine-tune


def _architecture_reading(family, model_class, hf_config: dict, folder):
    """The transformers class whose names a model_class reads from a folder of this family; or why none."""
    families = [a.family for a in ARCHITECTURES if a.minilm_class is model_class]
    if not families:
        raise TypeError(f"{model_class.__name__} has no Hugging Face mapping; use GPT, Llama, Bert, "
                        "BertForMaskedLM, BertForPreTraining or ElectraDiscriminator")
    if family not in families:
        expected = " or ".join(repr(f) for f in dict.fromkeys(families))
        raise CheckpointError(f"{folder}: config.json has model_type {family!r}, expected {expected} for a "
                              f"{model_class.__name__}{loader_hint(hf_config)}")
    return next(a for a in ARCHITECTURES if a.family == family and a.minilm_class is model_class)


def load_hf_state_dict(model, checkpoint: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Copy Hugging Face-named tensors into model, checking names, shapes and ties first."""
    tensors = _canonical_names(checkpoint, family_of(model))
    mappings = mappings_for(model)
    params = model.state_dict()  # shares storage with the parameters: copy_ below writes into the model
    _check_names(model, mappings, tensors, source, example_keys=sorted(checkpoint)[:4])
    for m in mappings:
        if m.hf in tensors:
            _check_shape_and_tie(m, tensors, params, source)
    with torch.no_grad():
        for m in mappings:
            if m.how != TIED and m.hf in tensors:
                for name, tensor in zip(m.minilm, from_hf(m.how, tensors[m.hf])):
                    params[name].copy_(tensor)  # also casts, e.g. float16 files into a float32 model; a
                    # shared block (ALBERT) is one tensor under every blocks.{i}: blocks.0 writes them all


def _check_names(model, mappings: list[Mapping], tensors, source: str, example_keys: list[str]) -> None:
    """Missing backbone tensors are an error; missing heads and unused tensors are warnings."""
    missing = [m for m in mappings if m.how != TIED and m.hf not in tensors]
    missing_backbone = [m.hf for m in missing if m.part not in OPTIONAL_PARTS]
    if missing_backbone:
        raise CheckpointError(
            f"{source}: {len(missing_backbone)} tensor(s) the model needs are missing, e.g. "
            f"{missing_backbone[:6]}; the file has e.g. {example_keys}. Is it a "
            f"{family_of(model)} checkpoint of the shape config.json describes?")
    unexpected = sorted(set(tensors) - {m.hf for m in mappings})
    if unexpected:
        warnings.warn(f"{source}: {len(unexpected)} tensor(s) not used by {type(model).__name__}: "
                      f"{unexpected[:10]}", stacklevel=4)  # point at the caller of from_pretrained
    fresh_heads = sorted({m.part for m in missing})
    if fresh_heads:
        warnings.warn(f"{source} has no weights for {', '.join(fresh_heads)}: freshly initialised, "
                      "train them before use", stacklevel=4)  # point at the caller of from_pretrained


def _canonical_names(checkpoint, family: str) -> dict[str, torch.Tensor]:
    """Strip the model prefix, rename legacy names, drop the buffers that are not weights."""
    prefix = FILE_PREFIXES[family]
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
    want = to_hf(m.how, [params[n] for n in m.minilm]).shape  # the shape this model would save
    if got.shape != want:
        raise CheckpointError(
            f"{source}: tensor {m.hf!r} has shape {tuple(got.shape)} in the file but minilm expects "
            f"{tuple(want)} (for {', '.join(m.minilm)}); does config.json describe these weights?")


def _existing_folder(path) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise MissingFileError(f"{folder} is not a folder; pass a Hugging Face model folder holding "
                               "config.json and model.safetensors (or pytorch_model.bin)")
    return folder


def read_config(folder: Path) -> dict:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder} has no config.json; a Hugging Face model folder needs one")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_path} is not valid JSON ({err}); re-download or rewrite it") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} holds a JSON {type(config).__name__}, not an object of settings; "
                              "is it a model's config.json?")
    return config


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """model.safetensors if present, else pytorch_model.bin through torch.load(weights_only=True); refused if
    a tensor holds nan or inf (common/finite.py)."""
    safetensors_path, pickle_path = folder / "model.safetensors", folder / "pytorch_model.bin"
    if safetensors_path.is_file():
        try:
            tensors = load_file(safetensors_path)
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{safetensors_path} is not a readable safetensors file ({err}); it may be "
                                  "truncated or corrupt: download or save it again") from err
        refuse_non_finite(tensors, safetensors_path)
        return tensors
    if pickle_path.is_file():
        tensors = _read_pickle(pickle_path)
        refuse_non_finite(tensors, pickle_path)
        return tensors
    if any(folder.glob("*.index.json")):
        raise CheckpointError(f"{folder} holds a sharded checkpoint (*.index.json); minilm reads a single "
                              "model.safetensors or pytorch_model.bin: save it unsharded")
    raise CheckpointError(f"{folder} has no weights: expected model.safetensors or pytorch_model.bin, "
                          f"found {sorted(p.name for p in folder.iterdir())}")


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" not in str(err):  # torch names the global it refused; anything else is a damaged file
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: truncated, corrupt or not a "
                                  "checkpoint at all; download or save it again") from None
        raise CheckpointError(
            f"{path}: torch.load(weights_only=True) refused it: the pickle holds objects other than tensors, "
            "and unpickling those could run code. Convert a file you trust to model.safetensors") from err
    except Exception as err:  # random bytes reach any corner of the unpickler: OSError, EOFError, IndexError...
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: {err}): "
                              "truncated, corrupt or not a checkpoint at all; download or save it again") from None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise CheckpointError(f"{path} does not hold a flat dict of name -> tensor (a state_dict)")
    return state
