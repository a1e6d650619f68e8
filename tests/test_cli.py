"""The command line built from config dataclasses (minilm/training/cli.py), as train_gpt.py uses it."""

import dataclasses

import pytest

from common.errors import run_command
from minilm import GPTConfig
from minilm.training.cli import parse_args
from minilm.training.trainer import TrainConfig
from train_gpt import PRESETS, DataConfig

GROUPS = {"model": GPTConfig, "train": TrainConfig, "data": DataConfig}


def parse(*argv):
    return parse_args(PRESETS, GROUPS, list(argv), default_preset="small")


def parse_error(capsys, *argv):
    """The exit status and stderr of a command whose command line parse_args rejects."""
    code = run_command(lambda argv: parse(*argv), list(argv))
    return code, capsys.readouterr().err


def test_unknown_flag_exits_2_naming_it_with_close_matches_and_valid_flags(capsys):
    code, err = parse_error(capsys, "--n_layers", "2")
    assert code == 2
    assert "unknown flag --n_layers" in err
    assert "Did you mean --n_layer" in err
    assert "Valid flags:" in err and "--max_iters" in err and "--tokenizer" in err


def test_abbreviated_flag_is_unknown_not_a_prefix_match(capsys):
    code, err = parse_error(capsys, "--batch", "8")
    assert code == 2 and "unknown flag --batch." in err and "Did you mean --batch_size" in err


def test_unknown_flag_with_equals_sign_is_named(capsys):
    code, err = parse_error(capsys, "--learning_rate=3e-4")
    assert code == 2 and "unknown flag --learning_rate=3e-4" in err


def test_string_for_an_int_names_the_flag_and_value(capsys):
    code, err = parse_error(capsys, "--n_layer", "two")
    assert code == 2 and "--n_layer expects int, got 'two'" in err


def test_dtype_outside_its_choices_lists_them(capsys):
    code, err = parse_error(capsys, "--dtype", "float8")
    assert code == 2 and "--dtype must be one of float32, bfloat16, float16; got 'float8'" in err


def test_invalid_bool_value_names_the_flag(capsys):
    code, err = parse_error(capsys, "--compile", "maybe")
    assert code == 2 and "--compile expects bool, got 'maybe'" in err


def test_n_embd_not_divisible_by_n_head_is_a_clear_error(capsys):
    code, err = parse_error(capsys, "--n_embd", "30", "--n_head", "4")
    assert code == 2
    assert "invalid model config: n_embd (30) must be divisible by n_head (4)" in err


def test_invalid_train_config_names_the_field(capsys):
    code, err = parse_error(capsys, "--batch_size", "0")
    assert code == 2 and "invalid train config: batch_size must be positive, got 0" in err


def test_unknown_preset_lists_the_presets(capsys):
    code, err = parse_error(capsys, "--config", "huge")
    assert code == 2 and "huge" in err and "small" in err and "gpt2" in err


def test_help_lists_every_field_with_its_preset_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse("--config", "baby", "--help")
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for group in GROUPS.values():
        for field in dataclasses.fields(group):
            assert f"--{field.name} " in out, field.name
    assert "(default 64)" in out  # baby's block_size, not GPTConfig's 1024
    assert "peak learning rate (default 0.001)" in out


def test_preset_sets_fields_of_every_group():
    configs = parse("--config", "gpt2")
    assert configs["preset"] == "gpt2"
    assert (configs["model"].n_layer, configs["model"].n_embd) == (12, 768)
    assert (configs["train"].lr, configs["train"].grad_accum_steps) == (6e-4, 4)
    assert configs["data"].tokenizer == "gpt2"


def test_default_preset_applies_without_config_flag():
    configs = parse()
    assert configs["preset"] == "small"
    assert configs["model"].block_size == PRESETS["small"]["model"]["block_size"]
    assert configs["train"].out_dir == PRESETS["small"]["train"]["out_dir"]


def test_flags_override_the_preset():
    configs = parse("--config", "baby", "--lr", "3e-4", "--n_layer", "2")
    assert configs["train"].lr == 3e-4 and configs["model"].n_layer == 2
    assert configs["model"].n_embd == 128 and configs["train"].min_lr == 1e-4  # the rest stays baby's


def test_bool_flag_alone_means_true_and_accepts_explicit_values():
    assert parse("--compile").get("train").compile is True
    assert parse("--compile", "false")["train"].compile is False
    assert parse("--compile", "--n_layer", "2")["train"].compile is True
    assert parse("--progress=no")["train"].progress is False


def test_optional_field_accepts_none():
    assert parse("--config", "baby", "--min_lr", "none")["train"].min_lr is None
    assert parse("--data", "my.txt")["data"].data == "my.txt"


def test_extra_flags_are_parsed_beside_the_configs():
    configs = parse_args(PRESETS, GROUPS, ["--steps_to_show", "5"], default_preset="small",
                         extra_flags={"steps_to_show": (int, 3, "how many")})
    assert configs["extra"] == {"steps_to_show": 5}


def test_a_field_in_two_groups_is_rejected():
    with pytest.raises(ValueError, match="field 'vocab_size' is in both model and other"):
        parse_args({}, {"model": GPTConfig, "other": GPTConfig}, [])
