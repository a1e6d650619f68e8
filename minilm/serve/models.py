"""The models a server holds: each loaded once, at start, through the project's own loaders, and what
each can do. Compressed checkpoints load the same way, since the loaders read them.

    --ckpt names                                   loaded by                          endpoints
    a finetune.py checkpoint (classify / tag / lm)  load_finetuned                     classify or tag (+ embed
                                                                                       on a BERT), or generate
    a train_bert.py checkpoint (BertForPreTraining) load_checkpoint + saved_model      fill-mask, embed
    a Hugging Face BERT folder with MLM weights     from_pretrained                    fill-mask, embed
    any other GPT or BERT: train_gpt.py, a Hugging  open_model                         generate (GPT),
      Face GPT-2 or BertModel folder, minilm-l6                                        embed (BERT)
    a chat model: a .gguf file (smollm2), a folder  load_chat_model (minilm/chat/,     generate, chat
      whose tokenizer has a chat template            called by __main__.py)

A decoder whose tokenizer carries a chat template serves chat (POST /v1/chat/completions) as well as generate.
"""

import json
import time
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import torch

from common.errors import CheckpointError, ConfigError
from tokenizer import load_tokenizer

from ..finetune.checkpoints import base_folder, load_finetuned, open_model
from ..finetune.heads import SequenceClassifier, TokenTagger, backbone_family
from ..hf import from_pretrained, read_config
from ..model import GPT, Bert, BertForPreTraining
from ..training.checkpoint import load_checkpoint, saved_model

ENDPOINTS = ("generate", "classify", "tag", "fill-mask", "embed")
HF_MLM_ARCHITECTURES = {"BertForPreTraining", "BertForMaskedLM"}  # folders whose weights hold an MLM head


@dataclass
class ServedModel:
    name: str
    source: str  # the folder it was read from
    model: torch.nn.Module  # in eval mode: a GPT, Bert, BertForPreTraining, SequenceClassifier or TokenTagger
    tokenizer: object
    labels: list[str] | None  # a classifier's or tagger's label names
    load_seconds: float
    end_ids: tuple[int, ...] | None = None  # a chat model's end-of-turn tokens; None: no chat template, no chat
    created: int = field(default_factory=lambda: int(time.time()))  # when it was loaded (Unix time)

    @property
    def core(self) -> torch.nn.Module:
        """The GPT or Bert inside: what reads the tokens (and what embed pools)."""
        for attribute in ("backbone", "bert"):
            if hasattr(self.model, attribute):
                return getattr(self.model, attribute)
        return self.model

    @property
    def family(self) -> str:
        return backbone_family(self.core)  # "bert" or "gpt": how inputs are built (minilm/finetune/encode.py)

    @property
    def context(self) -> int:
        return self.core.config.block_size  # the most tokens one input may have

    @property
    def endpoints(self) -> tuple[str, ...]:
        if isinstance(self.model, SequenceClassifier):
            own = ("classify",)
        elif isinstance(self.model, TokenTagger):
            own = ("tag",)
        elif isinstance(self.model, BertForPreTraining):
            own = ("fill-mask",)
        else:
            own = ("generate",) if isinstance(self.model, GPT) else ()
        own += ("chat",) if self.end_ids is not None else ()  # only a decoder's chat template gives end_ids
        return own + (("embed",) if isinstance(self.core, Bert) else ())

    def describe(self) -> dict:
        """What GET /v1/models says of it: OpenAI's four fields (id, object, created, owned_by), then minilm's;
        "parameters" counts buffers too (an int8 checkpoint keeps its weights there)."""
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "minilm",
                "name": self.name, "kind": type(self.model).__name__, "family": self.family, "source": self.source,
                "endpoints": list(self.endpoints), "labels": self.labels, "context": self.context,
                "parameters": sum(t.numel() for t in chain(self.model.parameters(), self.model.buffers())),
                "load_seconds": round(self.load_seconds, 3)}


def parse_model_specs(specs: list[str]) -> dict[str, str]:
    """--ckpt FOLDER or NAME=FOLDER -> {name: folder}; a bare folder is named after itself (out/x/best: x)."""
    named = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep:
            path = Path(spec.rstrip("/"))
            name, folder = (path.parent.name if path.name in ("best", "ckpt", "merged") else path.name), spec
            name = name.removesuffix(".gguf")
        if not name or not folder:
            raise ConfigError(f"--ckpt {spec!r}: expected FOLDER or NAME=FOLDER")
        if name in named:
            raise ConfigError(f"--ckpt: two models are named {name!r}; name them apart with NAME=FOLDER")
        named[name] = folder
    return named


def load_served_model(name: str, spec: str, resolve_alias=None, gpt2_tokenizer=None) -> ServedModel:
    """Load one --ckpt. resolve_alias(name) -> folder finds a base named by an alias (minilm-l6);
    gpt2_tokenizer() builds the standard GPT-2 tokenizer for a GPT-2 folder without one (see load_base)."""
    start = time.perf_counter()
    folder = base_folder(spec, "--ckpt")
    config = read_config(folder)
    labels = None
    if "task" in config:
        model, tokenizer, config = load_finetuned(folder, resolve_alias, gpt2_tokenizer)
        labels = config["labels"]
    elif config.get("model_class") == "BertForPreTraining":  # a train_bert.py checkpoint, heads included
        state_dict, _, _ = load_checkpoint(folder, with_train_state=False)
        model, tokenizer = saved_model(folder, config, state_dict).eval(), load_tokenizer(folder / "tokenizer")
    elif HF_MLM_ARCHITECTURES & set(config.get("architectures") or []):
        # open_model reads the tokenizer (and the encoder alone); the MLM head comes with from_pretrained.
        _, tokenizer = open_model(str(folder), "--ckpt", resolve_alias, gpt2_tokenizer)
        model = from_pretrained(folder, BertForPreTraining)
    else:
        model, tokenizer = open_model(str(folder), "--ckpt", resolve_alias, gpt2_tokenizer)
    served = ServedModel(name, str(folder), model.eval(), tokenizer, labels, time.perf_counter() - start)
    _check_tokenizer(served)
    return served


def served_chat_model(name: str, chat, load_seconds: float) -> ServedModel:
    """A ServedModel of a minilm.chat ChatModel (its model, tokenizer with template, end-of-turn ids, source)."""
    return ServedModel(name, chat.source, chat.model.eval(), chat.tokenizer, None, load_seconds, tuple(chat.end_ids))


def has_chat_template(folder) -> bool:
    """A model folder whose saved tokenizer carries a chat template (a chat model saved by minilm), read from
    tokenizer/tokenizer.json without loading the tokenizer; for a run's out_dir, its merged/ or best/."""
    for candidate in (Path(folder), Path(folder) / "merged", Path(folder) / "best"):
        try:
            config = json.loads((candidate / "tokenizer" / "tokenizer.json").read_text(encoding="utf-8"))
            if config.get("chat_template"):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def _check_tokenizer(served: ServedModel) -> None:
    if served.family == "bert" and not hasattr(served.tokenizer, "encode_plus"):
        raise CheckpointError(f"--ckpt {served.source}: a BERT needs a WordPiece tokenizer with [CLS] and [SEP]; "
                              f"its tokenizer is a {type(served.tokenizer).__name__}")
    if "fill-mask" in served.endpoints and getattr(served.tokenizer, "mask_id", None) is None:
        raise CheckpointError(f"--ckpt {served.source}: fill-mask needs a tokenizer with a [MASK] token")
