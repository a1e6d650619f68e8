"""AdaLoRA: starts as the base model, prunes to the rank budget by importance, penalises
non-orthogonal P and Q, and merges like LoRA."""

import pytest
import torch

from minilm.peft import PeftConfig, SVDLinear, apply_peft, merge_lora
from peft_tiny import HEAD, KINDS, randomize_, random_ids, tiny_model

INIT_R, TARGET_R, T_INIT, T_FINAL = 4, 2, 3, 13  # 2 blocks x (q, v) = 4 matrices: budget 16 -> 8


def adalora_model(kind="bert"):
    model = tiny_model(kind)
    cfg = PeftConfig(method="adalora", adalora_init_r=INIT_R, adalora_target_r=TARGET_R,
                     adalora_tinit=T_INIT, adalora_tfinal=T_FINAL)
    return model, apply_peft(model, cfg, HEAD)


def svd_layers(model):
    return [m for m in model.modules() if isinstance(m, SVDLinear)]


def fake_gradients(model, seed, boost_first=1.0):
    """Random gradients; the first layer's scaled by boost_first (to make it matter more)."""
    generator = torch.Generator().manual_seed(seed)
    for i, layer in enumerate(svd_layers(model)):
        for param in (layer.lora_P, layer.lora_E, layer.lora_Q):
            param.grad = torch.randn(param.shape, generator=generator) * (boost_first if i == 0 else 1.0)


def drive(model, controller, steps, boost_first=1.0):
    for step in steps:
        fake_gradients(model, seed=step, boost_first=boost_first)
        controller.update(model, step)


@pytest.mark.parametrize("kind", KINDS)
def test_adalora_at_init_equals_base_model_exactly(kind):
    base, (model, _) = tiny_model(kind), adalora_model(kind)
    ids = random_ids()
    assert torch.equal(model(ids), base(ids))


def test_budget_is_initial_before_warmup_then_falls_cubically_to_target():
    _, controller = adalora_model()
    budgets = [controller.budget(step) for step in range(T_FINAL + 3)]
    assert budgets[:T_INIT + 1] == [16] * (T_INIT + 1)
    assert budgets[T_FINAL:] == [8] * 3
    assert all(a >= b for a, b in zip(budgets, budgets[1:]))
    middle = (T_INIT + T_FINAL) // 2  # half-way: 8 + 8 * (1/2)^3 = 9
    assert budgets[middle] == 9


def test_update_prunes_to_the_target_total_rank():
    model, controller = adalora_model()
    randomize_([layer.lora_E for layer in svd_layers(model)])  # nonzero λ, so its sensitivity counts too
    drive(model, controller, range(T_FINAL + 1))
    assert sum(controller.ranks().values()) == TARGET_R * 4
    assert sum(int(layer.rank_mask.sum()) for layer in svd_layers(model)) == TARGET_R * 4


def test_update_follows_the_budget_during_the_schedule():
    model, controller = adalora_model()
    drive(model, controller, range(T_INIT + 4))
    assert sum(controller.ranks().values()) == controller.budget(T_INIT + 3) < 16


def test_the_most_important_layer_keeps_its_full_rank():
    model, controller = adalora_model()
    drive(model, controller, range(T_FINAL + 1), boost_first=100.0)
    ranks = controller.ranks()
    assert ranks["backbone.blocks.0.attn.q_proj"] == INIT_R
    assert sum(ranks.values()) == TARGET_R * 4


def test_masks_stay_fixed_after_t_final():
    model, controller = adalora_model()
    drive(model, controller, range(T_FINAL + 1))
    masks = [layer.rank_mask.clone() for layer in svd_layers(model)]
    drive(model, controller, range(T_FINAL + 1, T_FINAL + 6), boost_first=100.0)
    assert all(torch.equal(layer.rank_mask, mask) for layer, mask in zip(svd_layers(model), masks))


def test_a_pruned_singular_value_has_no_effect_on_the_output():
    model, _ = adalora_model()
    layer = svd_layers(model)[0]
    randomize_([layer.lora_E])
    layer.rank_mask[1] = 0.0
    ids = random_ids()
    before = model(ids)
    with torch.no_grad():
        layer.lora_E[1] += 5.0
    assert torch.equal(model(ids), before)


def test_orthogonality_penalty_is_zero_for_orthonormal_P_and_Q():
    model, controller = adalora_model()
    with torch.no_grad():
        for layer in svd_layers(model):
            layer.lora_P.copy_(torch.linalg.qr(torch.randn(layer.out_features, INIT_R)).Q)  # orthonormal columns
            layer.lora_Q.copy_(torch.linalg.qr(torch.randn(layer.in_features, INIT_R)).Q.T)  # orthonormal rows
    assert controller.penalty(model).item() == pytest.approx(0.0, abs=1e-9)


def test_orthogonality_penalty_is_positive_for_random_P_and_Q():
    model, controller = adalora_model()
    assert controller.penalty(model).item() > 0.1


def test_orthogonality_penalty_is_the_frobenius_formula():
    model, controller = adalora_model()
    layer = svd_layers(model)[0]
    P, Q = layer.lora_P.detach(), layer.lora_Q.detach()
    eye = torch.eye(INIT_R)
    expected = torch.linalg.matrix_norm(P.T @ P - eye) ** 2 + torch.linalg.matrix_norm(Q @ Q.T - eye) ** 2
    torch.testing.assert_close(layer.orthogonality_penalty(), expected)


def test_controller_penalty_is_orth_reg_times_the_mean_over_layers():
    model, controller = adalora_model()
    layer_penalties = torch.stack([layer.orthogonality_penalty() for layer in svd_layers(model)])
    torch.testing.assert_close(controller.penalty(model), 0.1 * layer_penalties.mean())  # orth_reg default 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_adalora_merged_equals_unmerged(kind):
    model, _ = adalora_model(kind)
    randomize_([layer.lora_E for layer in svd_layers(model)])
    svd_layers(model)[1].rank_mask[0] = 0.0
    ids = random_ids()
    with torch.no_grad():
        unmerged = model(ids)
        merged = merge_lora(model)(ids)
    assert not svd_layers(model)
    torch.testing.assert_close(merged, unmerged, rtol=0, atol=1e-5)


def test_rank_report_names_every_adapted_matrix():
    _, controller = adalora_model()
    report = controller.rank_report()
    assert len(report.splitlines()) == 4 and "backbone.blocks.1.attn.v_proj" in report
