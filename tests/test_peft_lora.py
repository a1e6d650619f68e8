"""LoRA: starts as the base model, merges into a plain model with the same outputs."""

import pytest
import torch
import torch.nn as nn

from minilm.peft import LoRALinear, PeftConfig, apply_peft, merge_lora
from peft_tiny import HEAD, KINDS, randomize_, random_ids, tiny_model

ALL_TARGETS = "q_proj,k_proj,v_proj,out_proj,fc_in,fc_out"


def lora_model(kind, targets=ALL_TARGETS, nonzero_B=True):
    model = tiny_model(kind)
    apply_peft(model, PeftConfig(method="lora", lora_r=4, lora_alpha=8.0, lora_targets=targets), HEAD)
    if nonzero_B:
        randomize_([m.lora_B for m in model.modules() if isinstance(m, LoRALinear)])
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_lora_with_zero_B_equals_base_model_exactly(kind):
    base, model = tiny_model(kind), lora_model(kind, nonzero_B=False)
    ids = random_ids()
    assert torch.equal(model(ids), base(ids))


@pytest.mark.parametrize("kind", KINDS)
def test_lora_with_nonzero_B_changes_the_output(kind):
    base, model = tiny_model(kind), lora_model(kind)
    ids = random_ids()
    assert not torch.allclose(model(ids), base(ids), atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_lora_merged_equals_unmerged(kind):
    model = lora_model(kind)
    ids = random_ids()
    with torch.no_grad():
        unmerged = model(ids)
        merged = merge_lora(model)(ids)
    torch.testing.assert_close(merged, unmerged, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_lora_merged_model_is_a_plain_model(kind):
    base, model = tiny_model(kind), merge_lora(lora_model(kind))
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert {name: t.shape for name, t in model.state_dict().items()} == \
           {name: t.shape for name, t in base.state_dict().items()}
    assert all(type(m.attn.q_proj) is nn.Linear for m in model.backbone.blocks)


def test_lora_merge_adds_scaled_B_times_A_to_the_weight():
    model = lora_model("bert", targets="q_proj")
    layer = model.backbone.blocks[0].attn.q_proj
    expected = layer.weight + (8.0 / 4) * layer.lora_B @ layer.lora_A  # alpha / r = 2
    merge_lora(model)
    torch.testing.assert_close(model.backbone.blocks[0].attn.q_proj.weight, expected)


def test_lora_default_targets_are_q_and_v():
    model = tiny_model("gpt")
    apply_peft(model, PeftConfig(method="lora"), HEAD)
    wrapped = sorted(name for name, m in model.named_modules() if isinstance(m, LoRALinear))
    assert wrapped == [f"backbone.blocks.{i}.attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]


def test_lora_trains_only_A_B_and_the_head():
    model = lora_model("gpt")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.endswith(("lora_A", "lora_B")) or name.startswith("classifier.")
                             for name in trainable)


def test_lora_keeps_the_base_weight_names():
    base, model = tiny_model("bert"), lora_model("bert")
    assert set(base.state_dict()) <= set(model.state_dict())


def test_lora_rejects_an_unknown_target():
    with pytest.raises(ValueError, match="lora_targets"):
        PeftConfig(method="lora", lora_targets="q_proj,query")


def test_applying_lora_twice_is_an_error():
    model = lora_model("gpt")
    with pytest.raises(TypeError, match="already applied"):
        apply_peft(model, PeftConfig(method="lora"), HEAD)

