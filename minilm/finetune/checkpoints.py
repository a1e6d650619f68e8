"""Base models in, fine-tuned checkpoints out (docs/finetuning.md, "What a run saves").

A base model is a folder (finetune.py turns --base into one):
    out/gpt-small        a train_gpt.py / train_bert.py run (its best/ checkpoint) or checkpoint folder
    path/to/hf-folder    a Hugging Face folder (config.json with "model_type": "bert" or "gpt2"),
                         such as the one data/assets.py fetches for the alias minilm-l6
    a chat model         --task chat: a decoder finetune.py reads with minilm/chat/load.py (a .gguf file too);
                         its pointer and template: chat_base.py

A fine-tuned checkpoint holds only what was trained (a LoRA run: ~1% of the numbers) and a pointer
to the base, with the base's sha256 so a changed base is caught:

    best/model.safetensors   the trained tensors: head, LoRA/adapter/prefix tensors, unfrozen layers
    best/config.json         {"task", "labels", "head", "peft", "base": {...}, "backbone": {...}, ...}
    best/tokenizer/          the base's tokenizer, so predict needs nothing else

`--merge` instead writes every tensor, with LoRA folded into the weights (weights "full", no base needed).
"""

import json
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from common.errors import CheckpointError, MissingFileError
from tokenizer import BPETokenizer, WordPieceTokenizer, load_tokenizer

from ..compress.pruned import build_model, model_record
from ..compress.quantize import QuantizationRecord, int8_shell, is_quantized
from ..hf import from_pretrained, read_config
from ..model import GPT, Bert, BertConfig, GPTConfig, Llama, LlamaConfig
from ..peft import PeftConfig, apply_peft, precompute_prefix
from ..training.checkpoint import (MODEL_CLASSES, load_checkpoint, load_model_weights, resolve_checkpoint, saved_model,
                                   tied_names, unwrap_model)
from ..training.trainer import Trainer
from .chat_base import find_decoder_base, model_sha256
from .heads import HEAD_NAMES, HEADS

BACKBONES = {"GPT": (GPT, GPTConfig), "Bert": (Bert, BertConfig), "Llama": (Llama, LlamaConfig)}
HEADLESS_TASKS = ("lm", "chat")  # the backbone is the whole model: its own LM head writes the text
# Where each pretraining model keeps the Bert that fine-tuning reads: BERT's, ALBERT's and RoBERTa's is
# `bert`; ELECTRA's is its discriminator's (the generator only served pretraining and is dropped).
BACKBONE_OF = {"BertForPreTraining": "bert", "BertForMaskedLM": "bert", "Electra": "discriminator.bert"}


@dataclass
class Base:
    backbone: torch.nn.Module  # a GPT or a Bert
    tokenizer: object
    pointer: dict  # how to find it again: {"alias": ...} or {"path": ...}, plus "sha256"


# -------------------------------------------------------------------------------------- base models

def load_base(folder, alias: str | None = None, check_sha256: str | None = None, gpt2_tokenizer=None,
              allow_quantized: bool = False) -> Base:
    """The backbone and tokenizer in folder (see the module docstring). alias: the name the folder was
    fetched by; gpt2_tokenizer(): the standard GPT-2 tokenizer, for a Hugging Face GPT-2 folder that
    carries no vocab.json and merges.txt (finetune.py passes data's). A quantized model is refused unless
    allow_quantized (to look inside it): its int8 weights cannot train."""
    folder = Path(folder)
    config = read_config(folder)
    if is_quantized(config) and not allow_quantized:
        raise CheckpointError(f"{folder} is quantized to int8 ({config['quantization'].get('method')}): int8 "
                              "weights do not train; fine-tune the float32 model it was made from, then quantize "
                              "the result with python -m minilm.compress quantize")
    if "model_class" in config:
        backbone, tokenizer = _load_minilm_checkpoint(folder, config)
    else:
        backbone, tokenizer = _load_hf_folder(folder, config, gpt2_tokenizer)
    pointer = {"alias": alias} if alias is not None else {"path": str(folder.resolve())}
    pointer["sha256"] = model_sha256(folder)
    if check_sha256 is not None and pointer["sha256"] != check_sha256:
        raise CheckpointError(f"the base model {alias or folder} has changed since fine-tuning (its weights' "
                              "sha256 differs); fine-tune again on this base, or restore the original one")
    return Base(backbone.train(), tokenizer, pointer)


def base_folder(spec: str, flag: str = "--base") -> Path:
    """The model folder --base (or flag) names: a folder, or a run's out_dir (its best/ checkpoint)."""
    folder = Path(spec)
    if (folder / "best" / "config.json").exists() and not (folder / "config.json").exists():
        folder = folder / "best"  # a run's out_dir: use its best checkpoint
    if not (folder / "config.json").exists():
        raise MissingFileError(f"{flag} {spec}: not a model folder (no config.json); pass minilm-l6, a "
                               "train_gpt.py / train_bert.py out_dir or checkpoint folder, or a Hugging Face "
                               "folder (for out/gpt-small, run `python train_gpt.py --config small` first: "
                               "about 5 minutes on 2 cores)")
    return resolve_checkpoint(folder)


def _load_minilm_checkpoint(folder: Path, config: dict):
    model_class = config["model_class"]
    if config.get("base") is not None:
        raise CheckpointError(f"{folder} is a fine-tuned checkpoint that holds only its trained tensors; "
                              "use its base, or save it whole with --merge and use that")
    if model_class not in MODEL_CLASSES:
        raise CheckpointError(f"{folder}: model_class {model_class!r} cannot be a base; expected one of "
                              f"{', '.join(MODEL_CLASSES)}")
    state_dict, _, _ = load_checkpoint(folder, with_train_state=False)
    model = saved_model(folder, config, state_dict)
    backbone = pretrained_backbone(model, model_class)
    if not (folder / "tokenizer").is_dir():
        raise CheckpointError(f"{folder} has no tokenizer/ folder; fine-tuning needs the tokenizer the "
                              "model was trained with")
    return backbone, load_tokenizer(folder / "tokenizer")


def pretrained_backbone(model: torch.nn.Module, model_class: str) -> torch.nn.Module:
    """The GPT or Bert to fine-tune inside a checkpoint's model (BACKBONE_OF), with a plain BertConfig: an
    ELECTRA discriminator's Bert carries the ElectraConfig it was built from, whose generator fields the
    fine-tuned checkpoint's backbone record does not need (build_backbone rebuilds a Bert from BertConfig)."""
    if model_class not in BACKBONE_OF:
        return model  # a GPT or a Bert is its own backbone
    backbone = model.get_submodule(BACKBONE_OF[model_class])
    bert_fields = {f.name for f in fields(BertConfig)}
    backbone.config = BertConfig.from_dict({k: v for k, v in backbone.config.to_dict().items() if k in bert_fields})
    return backbone


def _load_hf_folder(folder: Path, config: dict, gpt2_tokenizer):
    model_type = config.get("model_type")
    if model_type == "bert":
        if not (folder / "vocab.txt").exists():
            raise CheckpointError(f"{folder} has no vocab.txt; a BERT folder needs its WordPiece vocabulary")
        tokenizer_config = folder / "tokenizer_config.json"
        lowercase = json.loads(tokenizer_config.read_text()).get("do_lower_case", True) \
            if tokenizer_config.exists() else True
        return from_pretrained(folder, Bert), WordPieceTokenizer.from_vocab_file(folder / "vocab.txt", lowercase)
    if model_type == "gpt2":
        if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
            tokenizer = BPETokenizer.from_gpt2_files(folder / "vocab.json", folder / "merges.txt")
        elif gpt2_tokenizer is not None:
            tokenizer = gpt2_tokenizer()  # the standard GPT-2 vocabulary
        else:
            raise CheckpointError(f"{folder} has no vocab.json and merges.txt; a GPT-2 folder needs its BPE files")
        return from_pretrained(folder, GPT), tokenizer
    raise CheckpointError(f"{folder}: config.json has neither model_class (minilm) nor model_type bert/gpt2")


def backbone_record(backbone) -> dict:
    """What config.json says about the backbone, enough to rebuild it without the base."""
    return {"model_class": type(backbone).__name__, "model": model_record(backbone)}  # with a pruned model's heads


def build_backbone(record: dict):
    model_cls, config_cls = BACKBONES[record["model_class"]]
    return build_model(model_cls, config_cls, record["model"])


# ------------------------------------------------------------------------------- trained tensors only

def trained_state_dict(model) -> dict[str, torch.Tensor]:
    """Every state_dict entry except frozen parameters: trained weights plus any buffers a PEFT
    method keeps (e.g. AdaLoRA's rank masks)."""
    model = unwrap_model(model)
    frozen = {name for name, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}
    return {name: t for name, t in model.state_dict().items() if name not in frozen}


class _TrainedPart:
    """Stands in for the model in save_checkpoint, whose state_dict it narrows to the trained tensors."""

    def __init__(self, model):
        self.model = model

    def state_dict(self):
        return trained_state_dict(self.model)


def load_trained_weights(model, state_dict: dict[str, torch.Tensor]) -> None:
    """Load a trained_state_dict into a model built on the same base; every trained tensor must fit."""
    model = unwrap_model(model)
    expected = trained_state_dict(model)
    missing = sorted(set(expected) - set(state_dict) - tied_names(model))
    unexpected = sorted(set(state_dict) - set(model.state_dict()))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not fit the model: missing {missing[:8]}, unexpected "
                              f"{unexpected[:8]}; was it fine-tuned with other --method settings?")
    for name, tensor in state_dict.items():
        if model.state_dict()[name].shape != tensor.shape:
            raise CheckpointError(f"tensor {name}: checkpoint has shape {tuple(tensor.shape)}, the model "
                                  f"{tuple(model.state_dict()[name].shape)}; the configs differ")
    model.load_state_dict(state_dict, strict=False)


class FinetuneTrainer(Trainer):
    """The shared Trainer, but its checkpoints (best/ and ckpt/) hold only the trained tensors."""

    def checkpoint_weights(self):
        return _TrainedPart(self.model)

    def load_weights(self, state_dict):
        load_trained_weights(self.model, state_dict)


# ------------------------------------------------------------------------------ any model, to look inside

def open_model(spec: str, flag: str = "--ckpt", resolve_alias=None, gpt2_tokenizer=None):
    """(the GPT or Bert at the heart of a model folder, in eval mode, its tokenizer), for looking inside
    it (the shape trace, the attention page). spec: a train_gpt.py / train_bert.py checkpoint or run
    out_dir, a finetune.py checkpoint (its backbone, with its PEFT modules), or a Hugging Face GPT-2 /
    BERT folder. flag names the option in error messages."""
    folder = base_folder(spec, flag)
    if "task" in read_config(folder):
        model, tokenizer, _ = load_finetuned(folder, resolve_alias, gpt2_tokenizer)
        backbone = getattr(model, "backbone", model)  # a language-model fine-tune is the GPT itself
    else:
        base = load_base(folder, gpt2_tokenizer=gpt2_tokenizer, allow_quantized=True)
        backbone, tokenizer = base.backbone, base.tokenizer
    return backbone.eval(), tokenizer


# ------------------------------------------------------------------------------ fine-tuned checkpoints

def load_finetuned(folder, resolve_alias=None, gpt2_tokenizer=None, load_decoder=None):
    """(model in eval mode, tokenizer, config) from a fine-tuned checkpoint: a run's out_dir (its best/),
    a best/ or ckpt/ folder, or a merged/ folder. resolve_alias(name) -> path finds a base that was
    named by an alias (finetune.py passes data.assets.model_path); gpt2_tokenizer: see load_base;
    load_decoder(path): reads a --task chat base (a .gguf file too; finetune.py passes minilm.chat's)."""
    folder = Path(folder)
    if not (folder / "config.json").exists() and (folder / "best").is_dir():
        folder = folder / "best"
    state_dict, config, _ = load_checkpoint(folder, with_train_state=False)
    if "task" not in config:
        raise CheckpointError(f"{folder} is not a finetune.py checkpoint (its config.json has no 'task')")
    task = config["task"]
    if config["base"] is None:  # merged: every tensor is in the file
        backbone = build_backbone(config["backbone"])
    elif task == "chat":  # a decoder: a .gguf file, a Hugging Face folder or a checkpoint
        if load_decoder is None:  # a caller that reads GPT-2 / BERT bases only (the service's finetune loader)
            raise CheckpointError(f"{folder} is a --task chat checkpoint, whose base (a chat model: a .gguf file or "
                                  f"a decoder folder) this loader does not read; load {folder.parent / 'merged'} "
                                  "(written by --merge), a whole model, or ask it with python finetune.py predict "
                                  f"--ckpt {folder.parent}")
        backbone, _ = find_decoder_base(config["base"], resolve_alias, load_decoder)
    else:
        backbone = _find_base(config["base"], resolve_alias, gpt2_tokenizer).backbone
    head = config["head"]
    if task == "classify":
        model = HEADS[task](backbone, len(config["labels"]), head["dropout"], head.get("pooling"))
    else:
        model = backbone if task in HEADLESS_TASKS else HEADS[task](backbone, len(config["labels"]), head["dropout"])
    peft_cfg = PeftConfig(**config["peft"])
    if config["base"] is not None or config["peft_applied"]:
        apply_peft(model, peft_cfg, [] if task in HEADLESS_TASKS else HEAD_NAMES)  # the same tensors, then loaded
    if config.get("merged") and peft_cfg.method == "prefix":
        precompute_prefix(model)
    if is_quantized(config):  # python -m minilm.compress quantize: int8 modules for the int8 tensors
        int8_shell(model, QuantizationRecord.from_config(config, str(folder / "config.json")))
    if config["base"] is None:
        load_model_weights(model, state_dict)
    else:
        load_trained_weights(model, state_dict)
    return model.eval(), load_tokenizer(folder / "tokenizer"), config


def _find_base(pointer: dict, resolve_alias, gpt2_tokenizer) -> Base:
    alias = pointer.get("alias")
    if alias is not None and resolve_alias is None:
        raise TypeError(f"this checkpoint's base is the alias {alias!r}: pass resolve_alias to load_finetuned")
    folder = resolve_alias(alias) if alias is not None else Path(pointer["path"])
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"this checkpoint holds only its trained tensors, and its base model is not at "
                              f"{folder} any more (it was fine-tuned from there): put the base back there, or "
                              "fine-tune again with --merge, which saves every tensor")
    return load_base(folder, alias, pointer["sha256"], gpt2_tokenizer)

