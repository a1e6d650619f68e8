"""PeftConfig: which parameter-efficient method to fine-tune with, and its knobs (docs/peft.md).

The field names are unique and prefixed by method, so the config plugs into minilm/training/cli.py next to
the model and train configs: `--method lora --lora_r 8 --lora_targets q_proj,v_proj`.
"""

from dataclasses import dataclass, field

from .wrapped import TARGET_PATHS

METHODS = ("full", "freeze", "lora", "adalora", "adapter", "prefix")
LORA_INITS = ("kaiming", "normal")


def _help(default, help_text, choices=None):
    metadata = {"help": help_text} if choices is None else {"help": help_text, "choices": choices}
    return field(default=default, metadata=metadata)


@dataclass
class PeftConfig:
    method: str = _help("full", "what trains besides the task head", METHODS)
    train_layers: int = _help(0, "freeze: how many top blocks train with the head (0: the head only)")
    lora_r: int = _help(8, "lora: the rank r of each update B·A")
    lora_alpha: float = _help(16.0, "lora: the update is scaled by lora_alpha / lora_r")
    lora_dropout: float = _help(0.0, "lora/adalora: dropout on the input of the update")
    lora_targets: str = _help("q_proj,v_proj", "lora/adalora: comma-separated Linears in each block, "
                              f"from {','.join(TARGET_PATHS)}")
    lora_init: str = _help("kaiming", "lora: how A starts (B always starts at zero)", LORA_INITS)
    adalora_init_r: int = _help(12, "adalora: the rank each matrix starts with")
    adalora_target_r: int = _help(4, "adalora: the average rank per matrix at the end of the schedule")
    adalora_tinit: int = _help(0, "adalora: steps of warm-up before any rank is pruned")
    adalora_tfinal: int = _help(1000, "adalora: the step where the budget reaches the target and freezes")
    adalora_beta1: float = _help(0.85, "adalora: EMA factor of the sensitivity")
    adalora_beta2: float = _help(0.85, "adalora: EMA factor of the uncertainty")
    adalora_orth_reg: float = _help(0.1, "adalora: weight of the orthogonality penalty on P and Q")
    adapter_size: int = _help(64, "adapter: the bottleneck width")
    prefix_length: int = _help(10, "prefix: how many learned key/value vectors each layer gets")
    prefix_hidden: int = _help(512, "prefix: the width of the re-parameterisation MLP")

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        for name in ("lora_r", "adalora_init_r", "adalora_target_r", "adapter_size", "prefix_length",
                     "prefix_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("train_layers", "adalora_tinit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.train_layers and self.method != "freeze":
            raise ValueError(f"train_layers is for method freeze only (method is {self.method!r}); "
                             "leave it at 0")
        if self.lora_alpha <= 0:
            raise ValueError(f"lora_alpha must be positive, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.lora_init not in LORA_INITS:
            raise ValueError(f"lora_init must be one of {', '.join(LORA_INITS)}; got {self.lora_init!r}")
        unknown = [t for t in self.targets if t not in TARGET_PATHS]
        if unknown or not self.targets:
            raise ValueError(f"lora_targets {self.lora_targets!r}: name one or more of {', '.join(TARGET_PATHS)}, "
                             "comma-separated (e.g. q_proj,v_proj)")
        if self.adalora_target_r > self.adalora_init_r:
            raise ValueError(f"adalora_target_r ({self.adalora_target_r}) must be <= adalora_init_r "
                             f"({self.adalora_init_r}): the budget only falls")
        if self.adalora_tfinal <= self.adalora_tinit:
            raise ValueError(f"adalora_tfinal ({self.adalora_tfinal}) must be after adalora_tinit "
                             f"({self.adalora_tinit}); set it to about 80% of max_iters")
        for name in ("adalora_beta1", "adalora_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.adalora_orth_reg < 0:
            raise ValueError(f"adalora_orth_reg must be >= 0, got {self.adalora_orth_reg}")

    @property
    def targets(self) -> list[str]:
        """lora_targets as a list: "q_proj,v_proj" -> ["q_proj", "v_proj"]."""
        return [name.strip() for name in self.lora_targets.split(",") if name.strip()]
