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
