"""peft_state_dict: only the trained tensors, and they restore the trained model exactly."""

import pytest
import torch

from minilm.peft import PeftConfig, apply_peft, load_peft_state_dict, peft_state_dict, precompute_prefix
from peft_tiny import HEAD, one_training_step, random_ids, tiny_model

METHOD_CONFIGS = {
    "freeze": dict(method="freeze", train_layers=1),
    "lora": dict(method="lora", lora_r=2),
    "adalora": dict(method="adalora", adalora_init_r=3, adalora_target_r=1, adalora_tinit=0, adalora_tfinal=1),
    "adapter": dict(method="adapter", adapter_size=4),
    "prefix": dict(method="prefix", prefix_length=3, prefix_hidden=8),
}


def trained_model(method, kind):
    model = tiny_model(kind)
    controller = apply_peft(model, PeftConfig(**METHOD_CONFIGS[method]), HEAD)
    one_training_step(model, controller, step=0)
    one_training_step(model, controller, step=1)  # AdaLoRA: past t_final, so ranks are pruned
    return model


@pytest.mark.parametrize("method", METHOD_CONFIGS)
def test_peft_state_dict_holds_only_the_trained_tensors(method):
    model = trained_model(method, "bert")
    state = peft_state_dict(model)
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name for name in state if name.endswith("rank_mask")}
    assert set(state) == trained | buffers
    assert bool(buffers) == (method == "adalora")
    assert sum(t.numel() for t in state.values()) < sum(t.numel() for t in model.state_dict().values()) / 2


@pytest.mark.parametrize("kind", ["gpt", "bert"])
@pytest.mark.parametrize("method", METHOD_CONFIGS)
def test_peft_state_dict_round_trips_into_a_fresh_model(method, kind):
    model = trained_model(method, kind)
    state = {name: t.clone() for name, t in peft_state_dict(model).items()}
    fresh = tiny_model(kind)  # the same base weights (same seed), untrained
    apply_peft(fresh, PeftConfig(**METHOD_CONFIGS[method]), HEAD)
    ids = random_ids()
    assert not torch.equal(fresh(ids), model(ids))
    load_peft_state_dict(fresh, state)
    assert torch.equal(fresh(ids), model(ids))


def test_adalora_state_carries_the_pruned_ranks():
    model = trained_model("adalora", "bert")
    masks = {name: t for name, t in peft_state_dict(model).items() if name.endswith("rank_mask")}
    assert sum(int(mask.sum()) for mask in masks.values()) == 1 * len(masks)  # target_r 1 per matrix


def test_precomputed_prefix_state_holds_the_table_only():
    model = trained_model("prefix", "gpt")
    precompute_prefix(model)
    prefix_names = [name for name in peft_state_dict(model) if "prefix_encoder" in name]
    assert prefix_names == ["backbone.prefix_encoder.table"]


def test_loading_a_state_from_another_method_is_an_error():
    state = peft_state_dict(trained_model("lora", "gpt"))
    other = tiny_model("gpt")
    apply_peft(other, PeftConfig(method="adapter", adapter_size=4), HEAD)
    with pytest.raises(ValueError, match="apply_peft"):
        load_peft_state_dict(other, state)


def test_loading_a_state_with_another_rank_is_an_error():
    state = peft_state_dict(trained_model("lora", "gpt"))
    other = tiny_model("gpt")
    apply_peft(other, PeftConfig(method="lora", lora_r=4), HEAD)
    with pytest.raises(ValueError, match="shape"):
        load_peft_state_dict(other, state)
