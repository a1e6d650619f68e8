"""python -m minilm.compress: make a trained model's checkpoint smaller (docs/compression.md).

    python -m minilm.compress quantize CKPT OUT                     # int8 weights, int8 x int8 matmuls
    python -m minilm.compress quantize CKPT OUT --compute weight_only
    python -m minilm.compress prune CKPT OUT --share 0.3            # the 30% least important heads
    python -m minilm.compress prune CKPT OUT --heads "0:1,5 3:0"    # these heads (layer:head,head ...)
    python -m minilm.compress prune CKPT OUT --mlp 0.5              # half of each MLP matrix's weights -> 0

CKPT is a train_gpt.py / train_bert.py checkpoint or run out_dir, or a finetune.py one; OUT is a new
checkpoint folder holding every tensor, which loads wherever CKPT did (sample.py, finetune.py predict,
the service). quantize also takes every model minilm loads: a .gguf file, a Hugging Face folder, an alias
(smollm2, minilm-l6); OUT is then a minilm checkpoint (python -m minilm.chat --model OUT), carrying the
tokenizer (a GGUF's own, or the folder's tokenizer/). For decoding, --compute weight_only:

    python -m minilm.compress quantize smollm2 out/smollm2-int8 --compute weight_only

prune takes minilm checkpoints only. --share ranks heads by importance on a classifier's own training
examples (the split finetune.py trained on), so it needs a finetune.py classify checkpoint; --heads works
on any.
Prune first, then quantize: a quantized checkpoint is refused by both.

OUT is checked before any work (common/output_guard.py): it may never be CKPT, hold it or lie inside it (nor
the base or the data of a fine-tuned CKPT); a checkpoint, a run or a folder of other files is replaced only
with --overwrite. The command lives here, in __main__.py, because it reads data/ (a classifier's examples,
the asset cache): the rest of minilm/compress/ is library that minilm/training and minilm/finetune import.
"""

import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

from common.errors import CheckpointError, ConfigError, MissingFileError, run_command
from common.output_guard import guard_output
from data.assets import ASSETS, base_model_folder, fetch, model_path
from data.finetune_data import LabelMap, held_out_split, read_classification_file, subsample
from data.tokenizers import named_tokenizer
from minilm.finetune.checkpoints import base_folder, load_finetuned
from minilm.finetune.encode import encode_text_examples
from minilm.finetune.heads import backbone_family
from minilm.finetune.tasks import ClassificationTask, pad_batch
from minilm.gguf.load import is_gguf, load_gguf
from minilm.hf import from_pretrained, read_config
from minilm.peft import merge_lora
from minilm.training.checkpoint import (CONFIG, MODEL_CLASSES, WEIGHTS, load_checkpoint, save_checkpoint,
                                        saved_model)
from minilm.training.cli import parse_args
from tokenizer import load_tokenizer, tokenizer_from_gguf

from .heads import head_importance, least_important, prune_heads
from .pruned import model_record
from .int8_modules import COMPUTES
from .mlp import mlp_sparsity, prune_mlp
from .quantize import is_quantized, quantize_model


OVERWRITE_HELP = ("replace whatever OUT holds (a checkpoint, a run, other files: the folder is replaced whole); "
                  "never CKPT or a folder around it")


def _positional(help_text: str):
    return field(metadata={"nargs": None, "help": help_text})


@dataclass
class QuantizeConfig:
    ckpt: str = _positional("the model to quantize: a run's out_dir or a checkpoint folder, a .gguf file, a Hugging "
                            "Face folder, or an alias (smollm2, minilm-l6)")
    out: str = _positional("the folder to write the int8 checkpoint to")
    compute: str = field(default="int8", metadata={"choices": COMPUTES, "help": "int8: int8 x int8 -> int32 "
                         "matmuls; weight_only: int8 weights, float32 activations (decoding reads the int8 "
                         "weights directly: faster)"})
    evaluate: bool = field(default=True, metadata={"help": "a classifier: held-out accuracy before and after"})
    overwrite: bool = field(default=False, metadata={"help": OVERWRITE_HELP})


@dataclass
class PruneConfig:
    ckpt: str = _positional("the checkpoint to prune (a run's out_dir, or a checkpoint folder)")
    out: str = _positional("the folder to write the pruned checkpoint to")
    share: float = field(default=0.0, metadata={"help": "remove this share of all heads, the least important "
                         "first (a finetune.py classify checkpoint)"})
    heads: str | None = field(default=None, metadata={"help": "remove these heads: 'layer:head,head layer:head', "
                              "numbered as they are now, e.g. '0:1,5 3:0'"})
    mlp: float = field(default=0.0, metadata={"help": "zero this share of each MLP matrix's weights, smallest |w| "
                       "first"})
    importance_examples: int = field(default=512, metadata={"help": "training examples the importance is "
                                     "averaged over"})
    batch_size: int = field(default=32, metadata={"help": "examples per batch for importance and evaluation"})
    evaluate: bool = field(default=True, metadata={"help": "a classifier: held-out accuracy before and after"})
    overwrite: bool = field(default=False, metadata={"help": OVERWRITE_HELP})

    def __post_init__(self):
        if self.share and self.heads:
            raise ConfigError("--share picks the heads by importance and --heads names them: pass one of them")
        if not (self.share or self.heads or self.mlp):
            raise ConfigError("nothing to prune: pass --share, --heads and/or --mlp")
        for name in ("share", "mlp"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"--{name} is a share: at least 0 and below 1, got {getattr(self, name)}")
        if self.importance_examples < 1 or self.batch_size < 1:
            raise ConfigError("--importance_examples and --batch_size must be positive")


# ----------------------------------------------------------------------------------- checkpoints

@dataclass
class Opened:
    model: torch.nn.Module  # eval mode, every tensor in memory
    tokenizer: object  # None if the folder has none
    config: dict  # its config.json (for a GGUF or Hugging Face source: the one OUT will have)
    folder: Path  # the checkpoint folder, or the .gguf file / Hugging Face folder it was read from


def source_path(spec: str) -> Path:
    """The file or folder CKPT names: an alias (smollm2, minilm-l6; fetched on first use) or a path."""
    path = model_path(spec)
    if not path.exists():
        raise MissingFileError(f"CKPT {spec} does not exist; give a minilm checkpoint or run out_dir, a .gguf file, "
                               "a Hugging Face folder, or an alias (smollm2, minilm-l6)")
    return path


def is_foreign(path: Path) -> bool:
    """Whether path is a model minilm loads but did not write: a GGUF file or a Hugging Face folder."""
    return is_gguf(path) or (path.is_dir() and (path / CONFIG).is_file() and "model_type" in read_config(path))


def open_foreign(path: Path) -> Opened:
    """A .gguf file (its tokenizer inside) or a Hugging Face folder (a minilm tokenizer/ beside the weights, if
    any), with the config.json a minilm checkpoint of the same model has."""
    if is_gguf(path):
        model, tokenizer = load_gguf(path), tokenizer_from_gguf(path)
    else:
        model = from_pretrained(path)
        tokenizer = load_tokenizer(path / "tokenizer") if (path / "tokenizer").is_dir() else None
    model_class = type(model).__name__
    if model_class not in MODEL_CLASSES:
        raise CheckpointError(f"CKPT {path} holds a {model_class}, which minilm checkpoints cannot store (they "
                              f"store {', '.join(MODEL_CLASSES)})")
    config = {"model_class": model_class, "model": model_record(model), "source": str(path)}
    return Opened(model.eval(), tokenizer, config, path)


def open_checkpoint(spec: str, allow_quantized: bool = False) -> Opened:
    """Any model CKPT names, with its model rebuilt (a finetune.py one on its base). A quantized one is refused
    unless allow_quantized (to measure it): it cannot be quantized or pruned again."""
    path = source_path(spec)
    if is_foreign(path):
        return open_foreign(path)
    folder = base_folder(str(path), "CKPT")
    config = json.loads((folder / CONFIG).read_text())
    if is_quantized(config) and not allow_quantized:
        raise CheckpointError(f"CKPT {spec} is already quantized ({config['quantization'].get('method')}); "
                              "quantize or prune the float32 checkpoint it was made from")
    if "task" in config:
        model, tokenizer, config = load_finetuned(folder, resolve_alias=base_model_folder,
                                                  gpt2_tokenizer=lambda: named_tokenizer("gpt2"))
        return Opened(model, tokenizer, {**config, "base": None}, folder)  # OUT holds every tensor: no base needed
    if config.get("model_class") not in MODEL_CLASSES:
        raise CheckpointError(f"CKPT {spec} is not a minilm checkpoint (model_class {config.get('model_class')!r}); "
                              "a Hugging Face folder: fine-tune it with finetune.py first")
    state_dict, config, _ = load_checkpoint(folder, with_train_state=False)
    tokenizer = load_tokenizer(folder / "tokenizer") if (folder / "tokenizer").is_dir() else None
    return Opened(saved_model(folder, config, state_dict).eval(), tokenizer, config, folder)


def guard_out(cfg, command: str) -> None:
    """Before any work: may the command write OUT? (common/output_guard.py). The inputs are CKPT and, for a
    finetune.py checkpoint, the base it loads and the data files a classifier is evaluated on."""
    path = source_path(cfg.ckpt)
    if is_foreign(path):
        return guard_output(cfg.out, "OUT", command, inputs={f"CKPT {cfg.ckpt}": path}, overwrite=cfg.overwrite)
    folder = base_folder(str(path), "CKPT")
    inputs = {f"CKPT {cfg.ckpt}": folder}
    config = json.loads((folder / CONFIG).read_text())
    base, data = config.get("base"), config.get("data")
    if isinstance(base, dict) and base.get("path"):
        inputs[f"its base model {base['path']}"] = base["path"]
    for name in ("data", "val_data") if isinstance(data, dict) else ():
        if isinstance(data.get(name), str):
            inputs[f"its --{name} {data[name]}"] = data[name]
    guard_output(cfg.out, "OUT", command, inputs=inputs, overwrite=cfg.overwrite)


def write_checkpoint(opened: Opened, out: str) -> Path:
    """OUT: every tensor, the config (with the model's config as it is now) and the tokenizer."""
    out_dir = Path(out)
    model_config = model_record(opened.model)  # with a pruned model's heads_per_layer
    config = dict(opened.config)
    if "backbone" in config:  # finetune.py's record of the backbone
        config["backbone"] = {**config["backbone"], "model": model_config}
    if "model" in config:
        config["model"] = model_config

    def copy_tokenizer(tmp: Path) -> None:
        if (opened.folder / "tokenizer").is_dir():
            shutil.copytree(opened.folder / "tokenizer", tmp / "tokenizer")
        elif opened.tokenizer is not None:  # a GGUF's: written out, chat template and all
            opened.tokenizer.save(tmp / "tokenizer")

    return save_checkpoint(out_dir, opened.model, config, None, copy_tokenizer)


def merge_adapters(opened: Opened) -> None:
    """A LoRA fine-tune: fold the update into its weights first, so that every matrix is a plain Linear."""
    peft = opened.config.get("peft") or {}
    if opened.config.get("peft_applied") and peft.get("method") in ("lora", "adalora"):
        merge_lora(opened.model)
        opened.config.update(peft_applied=False, merged=True)


def size_mb(folder) -> float:
    """The bytes of a checkpoint's weights, or of a whole .gguf file / a Hugging Face folder's safetensors."""
    folder = Path(folder)
    files = [folder] if folder.is_file() else [folder / WEIGHTS] if (folder / WEIGHTS).is_file() else \
        list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))
    return sum(f.stat().st_size for f in files) / 1e6


# ----------------------------------------------------------------------------------- a classifier's data

def classification_splits(opened: Opened) -> dict[str, list[dict]]:
    """A finetune.py classify checkpoint's train and validation examples, encoded and split as it did."""
    data = opened.config["data"]

    def read(name):
        path = str(fetch(name)) if name in ASSETS and not Path(name).exists() else name
        return read_classification_file(path, data["text_column"], data["label_column"], data["text_b_column"])

    examples = read(data["data"])
    if data["max_examples"]:
        examples = subsample(examples, data["max_examples"])
    if data["val_data"] is not None:
        splits = {"train": examples, "val": read(data["val_data"])}
    else:
        splits = dict(zip(("train", "val"), held_out_split(examples, data["val_fraction"])))
    family, labels = backbone_family(opened.model.backbone), LabelMap(opened.config["labels"])
    return {split: encode_text_examples(items, opened.tokenizer, family, labels, data["max_length"], split)
            for split, items in splits.items()}


def classification_task(opened: Opened) -> ClassificationTask | None:
    """The Task of a classify checkpoint (None for any other kind)."""
    if opened.config.get("task") != "classify":
        return None
    return ClassificationTask(classification_splits(opened), getattr(opened.tokenizer, "pad_id", 0),
                              opened.config["labels"])


@torch.no_grad()
def held_out_accuracy(model, task: ClassificationTask, batch_size: int = 64) -> float:
    """Accuracy over the whole validation split (the Task's own evaluation, one train batch for its loss)."""
    return task.evaluate(model.eval(), SimpleNamespace(batch_size=batch_size, eval_iters=1), "cpu")["val_acc"]


def training_batches(task: ClassificationTask, n_examples: int, batch_size: int) -> list[dict]:
    """The first n_examples training examples, in batches: what head importance is averaged over."""
    pool = task.examples["train"][:n_examples]
    return [pad_batch(pool[i:i + batch_size], task.pad_id) for i in range(0, len(pool), batch_size)]


def classifier_loss(model, batch):
    return model(**batch)[1]


def parse_heads(spec: str) -> dict[int, list[int]]:
    """'0:1,5 3:0' -> {0: [1, 5], 3: [0]}."""
    plan = {}
    for part in spec.replace(";", " ").split():
        layer, _, heads = part.partition(":")
        try:
            plan.setdefault(int(layer), []).extend(int(h) for h in heads.split(","))
        except ValueError:
            raise ConfigError(f"--heads {spec!r}: write layer:head,head (e.g. '0:1,5 3:0'); {part!r} is not") from None
    return plan


# ----------------------------------------------------------------------------------- the commands

def quantize(cfg: QuantizeConfig) -> Path:
    guard_out(cfg, "python -m minilm.compress quantize")
    opened = open_checkpoint(cfg.ckpt)
    task = classification_task(opened) if cfg.evaluate else None
    before = held_out_accuracy(opened.model, task) if task else None
    merge_adapters(opened)
    record = quantize_model(opened.model, cfg.compute)
    opened.config["quantization"] = asdict(record)
    out = write_checkpoint(opened, cfg.out)
    print(f"wrote {out}: {size_mb(out):.1f} MB of weights (CKPT: {size_mb(opened.folder):.1f} MB), compute "
          f"{cfg.compute}{'' if record.int_mm else ' (no torch._int_mm here: the int8 products run in float32)'}")
    if cfg.compute == "int8" and opened.config.get("model_class") in ("GPT", "Llama"):
        print("note: to decode (chat, sample.py), --compute weight_only is faster: it reads the int8 weights "
              "as they are, one token at a time (docs/compression.md)")
    if task:
        print(f"held-out accuracy: {before:.4f} float32 -> {held_out_accuracy(opened.model, task):.4f} int8")
    return out


def prune(cfg: PruneConfig) -> Path:
    if is_foreign(source_path(cfg.ckpt)):
        raise CheckpointError(f"CKPT {cfg.ckpt} is a GGUF file or a Hugging Face folder; prune takes a minilm "
                              "checkpoint (fine-tune the model with finetune.py first)")
    guard_out(cfg, "python -m minilm.compress prune")
    opened = open_checkpoint(cfg.ckpt)
    task = classification_task(opened)
    if cfg.share and task is None:
        raise ConfigError(f"--share ranks heads on a classifier's training examples, and CKPT {cfg.ckpt} is not a "
                          "finetune.py classify checkpoint; name the heads with --heads instead")
    merge_adapters(opened)
    if opened.config.get("peft_applied"):
        raise CheckpointError(f"CKPT {cfg.ckpt} was fine-tuned with --method {opened.config['peft']['method']}, whose "
                              "modules sit around the heads and MLP; prune a full or LoRA fine-tune instead")
    before = held_out_accuracy(opened.model, task) if task and cfg.evaluate else None
    plan = parse_heads(cfg.heads) if cfg.heads else {}
    if cfg.share:
        importance = head_importance(opened.model, training_batches(task, cfg.importance_examples, cfg.batch_size),
                                     classifier_loss)
        plan = least_important(importance, cfg.share)
    if plan:
        heads = prune_heads(opened.model, plan)
        print(f"pruned {sum(map(len, plan.values()))} heads; heads per layer now {heads}")
    if cfg.mlp:
        prune_mlp(opened.model, cfg.mlp)
        print(f"MLP weights: {mlp_sparsity(opened.model):.1%} zeros")
    out = write_checkpoint(opened, cfg.out)
    print(f"wrote {out}: {size_mb(out):.1f} MB of weights (CKPT: {size_mb(opened.folder):.1f} MB)")
    if before is not None:
        print(f"held-out accuracy: {before:.4f} -> {held_out_accuracy(opened.model, task):.4f} pruned")
    return out


COMMANDS = {"quantize": (quantize, QuantizeConfig, "Quantize a checkpoint to int8 (weights and matmuls)."),
            "prune": (prune, PruneConfig, "Remove attention heads and/or zero small MLP weights of a checkpoint.")}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if not argv or argv[0] not in COMMANDS:
        raise ConfigError(f"name a command first: {' or '.join(COMMANDS)} (e.g. python -m minilm.compress "
                          "quantize CKPT OUT); add --help after it for its flags")
    run, config_cls, description = COMMANDS[argv[0]]
    cfg = parse_args({}, {argv[0]: config_cls}, argv[1:], description=description,
                     prog=f"python -m minilm.compress {argv[0]}")[argv[0]]
    return run(cfg)


if __name__ == "__main__":
    sys.exit(run_command(main))
