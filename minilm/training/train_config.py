"""TrainConfig: every setting of a training run, validated; the scripts' command line is generated from it."""

import math
from dataclasses import dataclass, field

import torch

from common.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _choice(default, choices, help_text):
    return field(default=default, metadata={"choices": choices, "help": help_text})


def _help(default, help_text):
    return field(default=default, metadata={"help": help_text})


@dataclass
class TrainConfig:
    out_dir: str = _help("out/run", "folder for checkpoints, metrics and plots")
    max_iters: int = _help(2000, "optimizer steps")
    batch_size: int = _help(12, "sequences per micro-batch, per process")
    grad_accum_steps: int = _help(1, "micro-batches summed into one optimizer step")
    lr: float = _help(1e-3, "peak learning rate")
    min_lr: float | None = _help(None, "learning rate at the end of the cosine (default lr / 10)")
    warmup_iters: int = _help(100, "steps of linear warm-up")
    lr_decay_iters: int | None = _help(None, "step where the cosine reaches min_lr (default max_iters)")
    weight_decay: float = _help(0.1, "AdamW weight decay, on matrices only")
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = _help(1.0, "clip the gradient norm to this (0: off)")
    eval_interval: int = _help(250, "evaluate (and checkpoint) every this many steps")
    eval_iters: int = _help(20, "batches per split in an evaluation")
    log_interval: int = _help(50, "print a log line every this many steps")
    metric: str = _help("val_loss", "evaluation metric that picks the best checkpoint")
    metric_goal: str = _choice("min", ("min", "max"), "whether the metric should go down or up")
    patience: int = _help(0, "stop after this many evaluations without improvement (0: never)")
    device: str = _help("auto", "auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    dtype: str = _choice("float32", tuple(DTYPES), "autocast dtype; float16 adds a gradient scaler")
    compile: bool = _help(False, "torch.compile the model")
    fsdp: bool = _help(False, "under torchrun, shard weights, gradients and optimizer state across the "
                       "processes (FSDP2) instead of copying the model to each (DDP)")
    seed: int = 1337
    resume: bool = _help(False, "continue from out_dir/ckpt exactly where it stopped")
    overwrite: bool = _help(False, "start afresh in an out_dir that holds a run: removes its ckpt/, best/, metrics")
    progress: bool = _help(True, "show a progress bar")

    def __post_init__(self):
        for name in ("max_iters", "batch_size", "grad_accum_steps", "eval_interval", "eval_iters", "log_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("warmup_iters", "patience", "weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:  # also catches nan
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"min_lr must be between 0 and lr ({self.lr}), got {self.min_lr}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        if (problem := device_problem(self.device)) is not None:
            raise ConfigError(problem)
        if self.resume and self.overwrite:
            raise ConfigError("--resume continues the run in out_dir and --overwrite replaces it: pass one of them")


def device_problem(name: str) -> str | None:
    """Why `--device name` cannot work, or None; checked where the flag enters, since torch itself only
    complains at the first tensor moved there ("auto" and a device this machine lacks: resolve_device)."""
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        return f"--device {name!r}: not a device minilm runs on; use auto, cpu, cuda, cuda:N or mps"
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if count and (device.index or 0) >= count:
        return f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
    return None
