"""The exercise checkers (exercises/): they fail on the untouched stubs, pass on the reference solutions
(tests/exercise_solutions.py), and name the mistake in a few deliberately wrong solutions."""

import ast
import math
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import exercise_solutions as solutions
from exercises.__main__ import main
from exercises.checks import EXERCISES, check
from common.errors import run_command

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_checker_fails_on_the_untouched_stub(name):
    result = check(name)
    assert not result.passed and result.not_written
    assert result.lines() == [f"{name}: not written yet: open exercises/{EXERCISES[name].stub}.py"]


@pytest.mark.parametrize("name", list(EXERCISES))
def test_every_checker_passes_on_the_reference_solutions(name):
    result = check(name, solutions)
    assert result.passed, result.lines()
    assert result.lines() == [f"{name}: all {len(EXERCISES[name].checks)} checks pass"]


def wrong(**functions):
    """The reference solutions with some functions replaced by wrong ones."""
    return types.SimpleNamespace(**{**vars(solutions), **functions})


def failures(name, module):
    result = check(name, module)
    assert not result.passed
    return "\n".join(result.failures)


def test_attention_without_scaling_is_named():
    def unscaled(q, k, v, allowed):
        probs = (q @ k.transpose(-2, -1)).masked_fill(~allowed, torch.finfo(q.dtype).min).softmax(-1) \
            if allowed is not None else (q @ k.transpose(-2, -1)).softmax(-1)
        return probs @ v, probs
    assert "forgot to scale by √d" in failures("attention", wrong(attention=unscaled))


def test_attention_ignoring_the_mask_is_named():
    def maskless(q, k, v, allowed):
        probs = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).softmax(-1)
        return probs @ v, probs
    text = failures("attention", wrong(attention=maskless))
    assert "mask ignored (a masked key got weight" in text and "scaled by √d" not in text


def test_a_mask_without_the_cache_offset_and_one_that_is_not_causal_are_named():
    def no_offset(n_query, n_key, causal, attention_mask):
        return solutions.allowed_mask(n_key, n_key, causal, attention_mask)[:, :, :n_query]
    assert "with 4 cached keys" in failures("mask", wrong(allowed_mask=no_offset))

    def not_causal(n_query, n_key, causal, attention_mask):
        return solutions.allowed_mask(n_query, n_key, False, attention_mask) if attention_mask is not None \
            else torch.ones(1, 1, n_query, n_key, dtype=torch.bool)
    assert "not causal (query 0 attends to key 1" in failures("mask", wrong(allowed_mask=not_causal))


def test_a_post_ln_block_given_as_pre_ln_is_named():
    text = failures("pre_ln", wrong(pre_ln_block=solutions.post_ln_block))
    assert "this is the post-LN block" in text


def test_an_unshifted_loss_is_named():
    def unshifted(logits, input_ids):
        return F.cross_entropy(logits.flatten(0, 1), input_ids.flatten())
    assert "loss not shifted" in failures("next_token_loss", wrong(next_token_loss=unshifted))


def test_masking_with_the_wrong_split_is_named():
    def all_masked(input_ids, special_mask, mask_id, vocab_size, generator):
        chosen = (torch.rand(input_ids.shape, generator=generator) < 0.15) & ~special_mask
        return input_ids.masked_fill(chosen, mask_id), torch.where(chosen, input_ids, -100)
    assert "80/10/10 off (measured 1.00/0.00/0.00" in failures("mlm_masking", wrong(mask_tokens=all_masked))


def test_top_p_off_by_one_is_named():
    def one_too_few(logits, top_p):  # cuts where the mass INCLUDING the token reaches p
        sorted_logits, order = torch.sort(logits, descending=True)
        cut = sorted_logits.softmax(-1).cumsum(-1) >= top_p
        cut[:, 0] = False
        return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits.masked_fill(cut, float("-inf")))
    assert "top-p kept too few" in failures("top_p", wrong(top_p_filter=one_too_few))

    def one_too_many(logits, top_p):
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        cut = probs.cumsum(-1) - probs - probs.roll(1, -1) >= top_p
        cut[:, :2] = False
        return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits.masked_fill(cut, float("-inf")))
    assert "top-p kept too many" in failures("top_p", wrong(top_p_filter=one_too_many))


def test_leftmost_first_bpe_and_unscaled_lora_are_named():
    def leftmost(data, merges):
        merged, ids = {(a, b): c for a, b, c in merges}, list(data)
        while (pair := next((p for p in zip(ids, ids[1:]) if p in merged), None)) is not None:
            ids = solutions.merge_pair(ids, pair, merged[pair])
        return ids
    assert "merged the leftmost pair first" in failures("bpe", wrong(encode_word=leftmost))

    def unscaled(x, weight, bias, lora_A, lora_B, alpha, r):
        return F.linear(x, weight, bias) + x @ lora_A.T @ lora_B.T
    assert "forgot the scaling alpha / r" in failures("lora", wrong(lora_forward=unscaled))


def _rope_angles(positions, d, theta):
    angle = positions[:, None].float() * theta ** (-torch.arange(0, d, 2).float() / d)  # (T, d/2)
    return torch.cat([angle, angle], dim=-1)  # (T, d)


def test_rope_on_neighbour_pairs_is_named():
    def neighbours(x, positions, theta=10000.0):
        d = x.size(-1)
        angle = _rope_angles(positions, d, theta)[:, : d // 2]
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * angle.cos() - b * angle.sin(), b * angle.cos() + a * angle.sin()], -1).flatten(-2)
    text = failures("rope", wrong(apply_rotary=neighbours))
    assert "you turned neighbours (2i, 2i+1)" in text and "q·k depends only on the distance" not in text


def test_rope_turned_the_wrong_way_and_rope_without_cos_are_named():
    def backwards(x, positions, theta=10000.0):
        angle = _rope_angles(positions, x.size(-1), theta)
        return x * angle.cos() - solutions.rotate_half(x) * angle.sin()
    assert "turned the wrong way (by -angle)" in failures("rope", wrong(apply_rotary=backwards))

    def without_cos(x, positions, theta=10000.0):
        return x + solutions.rotate_half(x) * _rope_angles(positions, x.size(-1), theta).sin()
    text = failures("rope", wrong(apply_rotary=without_cos))
    assert "forgot cos on x" in text and "q·k changed when both positions moved by 20" in text


def test_a_rotate_half_that_negates_the_wrong_half_is_named():
    def wrong_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x2, -x1], dim=-1)
    assert "rotate_half negated the wrong half" in failures("rope", wrong(rotate_half=wrong_half))


def test_rope_that_ignores_the_positions_given_or_theta_is_named():
    def counted(x, positions, theta=10000.0):
        return solutions.apply_rotary(x, torch.arange(x.size(2)), theta)
    assert "used 0 ... T-1 instead of the positions given" in failures("rope", wrong(apply_rotary=counted))

    def fixed_theta(x, positions, theta=10000.0):
        return solutions.apply_rotary(x, positions, 10000.0)
    text = failures("rope", wrong(apply_rotary=fixed_theta))
    assert "another theta: theta ignored" in text and "matches minilm/model/rope.py" not in text


def test_rmsnorm_that_subtracts_the_mean_is_named_layernorm():
    def layer_norm(x, weight, eps):
        centred = x.float() - x.float().mean(-1, keepdim=True)
        return weight * (centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    assert "subtracted the mean: that is LayerNorm" in failures("rmsnorm", wrong(rms_norm=layer_norm))


def test_rmsnorm_without_eps_or_with_eps_outside_the_root_is_named():
    def no_eps(x, weight, eps):
        x32 = x.float()
        return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True))).to(x.dtype)
    assert "a vector of zeros gives NaN (0 / 0)" in failures("rmsnorm", wrong(rms_norm=no_eps))

    def eps_outside(x, weight, eps):
        x32 = x.float()
        return weight * (x32 / (x32.pow(2).mean(-1, keepdim=True).sqrt() + eps)).to(x.dtype)
    assert "eps goes inside the square root" in failures("rmsnorm", wrong(rms_norm=eps_outside))


def test_rmsnorm_computed_in_the_inputs_half_precision_is_named():
    def in_low_precision(x, weight, eps):
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))
    text = failures("rmsnorm", wrong(rms_norm=in_low_precision))
    assert "computed in float16: x² overflowed" in text and "normalised in bfloat16" in text
    assert "matches minilm's RMSNorm" not in text  # in float32 it is right


def test_rmsnorm_in_float32_with_its_operations_in_another_order_passes():
    def reordered(x, weight, eps):
        x32 = x.float()
        return (weight.float() * x32 / torch.sqrt((x32 * x32).sum(-1, keepdim=True) / x.size(-1) + eps)).to(x.dtype)
    assert check("rmsnorm", wrong(rms_norm=reordered)).passed


def test_gqa_with_repeat_instead_of_repeat_interleave_is_named():
    def tiled(t, n_head):
        return t.repeat(1, n_head // t.size(1), 1, 1)
    assert "you tiled the stack (repeat)" in failures("gqa", wrong(share_kv=tiled))

    def tiled_attention(q, k, v):
        return _attend(q, tiled(k, q.size(1)), tiled(v, q.size(1)))
    assert "key/value heads tiled (repeat) instead of grouped" in failures("gqa", wrong(
        grouped_query_attention=tiled_attention))


def _attend(q, k, v, causal=True):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if causal:
        scores = scores.masked_fill(~torch.ones(q.size(2), k.size(2), dtype=torch.bool).tril(), float("-inf"))
    return scores.softmax(-1) @ v


def test_gqa_that_shares_the_queries_is_named():
    def fewer_query_heads(q, k, v):
        return _attend(q[:, :: q.size(1) // k.size(1)], k, v)  # one query head per key/value head
    assert "the output has 2 heads (n_kv_head)" in failures("gqa", wrong(grouped_query_attention=fewer_query_heads))

    def shared_queries(q, k, v):
        group = q.size(1) // k.size(1)
        return fewer_query_heads(q, k, v).repeat_interleave(group, dim=1)
    assert "the queries were shared" in failures("gqa", wrong(grouped_query_attention=shared_queries))


def test_gqa_without_the_causal_mask_is_named():
    def bidirectional(q, k, v):
        group = q.size(1) // k.size(1)
        return _attend(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), causal=False)
    assert "no causal mask" in failures("gqa", wrong(grouped_query_attention=bidirectional))


def test_a_crash_in_the_learners_code_is_one_line():
    text = failures("top_p", wrong(top_p_filter=lambda logits, top_p: logits[0]))
    assert "wrong shape of the filtered logits (expected (64, 50), got (50,))" in text


def test_the_command_lists_checks_and_refuses_an_unknown_name(capsys):
    assert run_command(main, ["list"]) == 0
    assert "1. attention" in capsys.readouterr().out
    assert run_command(main, ["check", "attention"]) == 1
    assert capsys.readouterr().out == "attention: not written yet: open exercises/e01_attention.py\n"
    assert run_command(main, ["check", "no_such"]) == 2
    assert capsys.readouterr().err.startswith("error: no exercise named 'no_such'")


def test_python_dash_m_exercises_exits_1_on_the_stubs():
    done = subprocess.run([sys.executable, "-m", "exercises", "check", "bpe"], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode == 1 and "bpe: not written yet: open exercises/e08_bpe.py" in done.stdout


def test_the_stubs_import_only_torch_and_the_standard_library():
    for exercise in EXERCISES.values():
        tree = ast.parse((REPO / exercise.path).read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                top = (name or "").split(".")[0]
                assert top == "torch" or top in sys.stdlib_module_names, f"{exercise.path} imports {name}"
