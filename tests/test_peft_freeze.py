"""Freezing: what does not train stays bitwise the same through an optimizer step, for every method."""

import pytest
import torch

from minilm.peft import PeftConfig, apply_peft, count_parameters, parameter_report
from peft_tiny import HEAD, KINDS, one_training_step, tiny_model

METHOD_CONFIGS = {
    "freeze": dict(method="freeze"),
    "freeze_top_block": dict(method="freeze", train_layers=1),
    "lora": dict(method="lora", lora_r=2),
    "adalora": dict(method="adalora", adalora_init_r=3, adalora_target_r=1, adalora_tfinal=5),
    "adapter": dict(method="adapter", adapter_size=4),
    "prefix": dict(method="prefix", prefix_length=3, prefix_hidden=8),
}


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHOD_CONFIGS)
def test_frozen_parameters_do_not_change_after_an_optimizer_step(kind, method):
    model = tiny_model(kind)
    controller = apply_peft(model, PeftConfig(**METHOD_CONFIGS[method]), HEAD)
    before = snapshot(model)
    one_training_step(model, controller)
    params = dict(model.named_parameters())
    frozen = [name for name, p in params.items() if not p.requires_grad]
    trained = [name for name, p in params.items() if p.requires_grad]
    assert frozen and trained
    assert all(torch.equal(params[name], before[name]) for name in frozen)
    assert any(not torch.equal(params[name], before[name]) for name in trained)  # the step did happen


def test_freeze_trains_only_the_head():
    model = tiny_model("bert")
    apply_peft(model, PeftConfig(method="freeze"), HEAD)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}


@pytest.mark.parametrize("kind, above", [("gpt", "ln_f"), ("bert", "pooler")])
def test_freeze_train_layers_trains_the_top_blocks_and_what_sits_above_them(kind, above):
    model = tiny_model(kind)
    apply_peft(model, PeftConfig(method="freeze", train_layers=1), HEAD)
    trainable = {backbone_module(name) for name, p in model.named_parameters()
                 if p.requires_grad and name.startswith("backbone.")}
    assert trainable == {"blocks.1", above}


def backbone_module(name):  # "backbone.blocks.1.attn.q_proj.weight" -> "blocks.1"; "backbone.ln_f.bias" -> "ln_f"
    parts = name.split(".")[1:]
    return ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]


def test_freeze_rejects_more_layers_than_the_model_has():
    with pytest.raises(ValueError, match="train_layers"):
        apply_peft(tiny_model("gpt"), PeftConfig(method="freeze", train_layers=3), HEAD)


def test_full_fine_tuning_trains_everything():
    model = tiny_model("gpt")
    model.requires_grad_(False)
    assert apply_peft(model, PeftConfig(method="full"), HEAD) is None
    assert all(p.requires_grad for p in model.parameters())


def test_a_head_name_that_matches_nothing_is_an_error():
    with pytest.raises(ValueError, match="classifer"):
        apply_peft(tiny_model("gpt"), PeftConfig(method="lora"), ["classifer"])


def test_a_tied_matrix_trains_under_either_name():
    model = tiny_model("gpt")
    apply_peft(model, PeftConfig(method="freeze"), ["backbone.lm_head"])  # lm_head.weight is wte.weight
    assert model.backbone.wte.weight.requires_grad


def test_count_parameters_counts_trainable_and_total():
    model = tiny_model("bert")
    apply_peft(model, PeftConfig(method="freeze"), HEAD)
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == (16 * 3 + 3, total)
    assert parameter_report(model) == f"trainable 51 / {total:,} ({100 * 51 / total:.2f}%)"


@pytest.mark.parametrize("field, value", [("method", "qlora"), ("lora_r", 0), ("lora_dropout", 1.0),
                                          ("adalora_tfinal", 0), ("adalora_target_r", 99)])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        PeftConfig(**{field: value})


def test_config_rejects_train_layers_for_other_methods():
    with pytest.raises(ValueError, match="train_layers"):
        PeftConfig(method="lora", train_layers=2)
