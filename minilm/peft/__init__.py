"""Parameter-efficient fine-tuning: train a small part of a pre-trained model (docs/peft.md).

    from minilm.peft import PeftConfig, apply_peft, parameter_report
    controller = apply_peft(model, PeftConfig(method="lora", lora_r=8), head_names=["classifier"])
    print(parameter_report(model))          # trainable 74,496 / 22,787,712 (0.33%)
    ... train; with AdaLoRA, add controller.penalty(model) to the loss and call
        controller.update(model, step) from Task.on_gradients ...
    save peft_state_dict(model); for export, merge_lora(model) (LoRA, AdaLoRA) or precompute_prefix(model)

One file per method: freeze.py, lora.py, adalora.py, adapter.py, prefix.py; wrapped.py holds what
LoRA, AdaLoRA and adapters share.
"""

import torch.nn as nn

from .adalora import AdaLoRAController, SVDLinear, add_adalora
from .adapter import Adapter, AdapterLinear, add_adapters
from .config import METHODS, PeftConfig
from .freeze import apply_freeze, count_parameters, freeze_all, parameter_report, unfreeze_by_prefix
from .lora import LoRALinear, add_lora, merge_lora
from .prefix import PrefixEncoder, add_prefix, precompute_prefix
from .state import load_peft_state_dict, peft_state_dict


def apply_peft(model: nn.Module, cfg: PeftConfig, head_names: list[str]) -> AdaLoRAController | None:
    """Prepare the model for cfg.method, in place: freeze what does not train, add the method's
    modules. head_names are parameter-name prefixes of the task head (e.g. ["classifier"]), which
    always trains. Returns the AdaLoRA controller for method "adalora", else None."""
    if cfg.method == "full":
        model.requires_grad_(True)
        unfreeze_by_prefix(model, head_names)  # checks that the head names exist
        return None
    freeze_all(model)
    controller = None
    if cfg.method == "freeze":
        apply_freeze(model, cfg.train_layers)
    elif cfg.method == "lora":
        add_lora(model, cfg.targets, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_init)
    elif cfg.method == "adalora":
        layers = add_adalora(model, cfg.targets, cfg.adalora_init_r, cfg.lora_dropout)
        controller = AdaLoRAController(layers, cfg.adalora_init_r, cfg.adalora_target_r, cfg.adalora_tinit,
                                       cfg.adalora_tfinal, cfg.adalora_beta1, cfg.adalora_beta2, cfg.adalora_orth_reg)
    elif cfg.method == "adapter":
        add_adapters(model, cfg.adapter_size)
    elif cfg.method == "prefix":
        add_prefix(model, cfg.prefix_length, cfg.prefix_hidden)
    unfreeze_by_prefix(model, head_names)
    return controller


__all__ = ["METHODS", "PeftConfig", "apply_peft", "count_parameters", "parameter_report", "peft_state_dict",
           "load_peft_state_dict", "merge_lora", "precompute_prefix", "AdaLoRAController", "LoRALinear",
           "SVDLinear", "AdapterLinear", "Adapter", "PrefixEncoder", "add_lora", "add_adalora", "add_adapters",
           "add_prefix", "apply_freeze", "freeze_all", "unfreeze_by_prefix"]
