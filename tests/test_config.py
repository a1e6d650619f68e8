"""GPTConfig / BertConfig: presets, overrides, and validation errors that name the field."""

import pytest

from minilm import BertConfig, GPTConfig

SIZE_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "n_inner")


def test_preset_keeps_its_fields_and_applies_overrides():
    config = GPTConfig.preset("gpt2", n_layer=2)
    assert (config.n_layer, config.n_head, config.n_embd, config.vocab_size) == (2, 12, 768, 50257)


def test_bert_defaults_are_berts_choices():
    config = BertConfig.preset("bert-base")
    assert (config.layer_norm_eps, config.gelu_approximate, config.block_size) == (1e-12, "none", 512)


def test_gpt_defaults_are_gpt2s_choices():
    config = GPTConfig.preset("gpt2")
    assert (config.layer_norm_eps, config.gelu_approximate, config.block_size) == (1e-5, "tanh", 1024)


def test_mlp_width_defaults_to_four_times_n_embd():
    assert GPTConfig(n_embd=64, n_head=4).mlp_width == 256
    assert GPTConfig(n_embd=64, n_head=4, n_inner=100).mlp_width == 100


def test_to_dict_from_dict_round_trip():
    config = BertConfig.preset("minilm-l6", dropout=0.0)
    assert BertConfig.from_dict(config.to_dict()) == config


def test_n_embd_not_divisible_by_n_head_names_both_fields():
    with pytest.raises(ValueError, match=r"n_embd \(100\) must be divisible by n_head \(3\)"):
        GPTConfig(n_embd=100, n_head=3)


@pytest.mark.parametrize("field", SIZE_FIELDS)
@pytest.mark.parametrize("bad_value", [0, -4, 2.5, True])
def test_non_positive_or_non_integer_size_names_the_field(field, bad_value):
    with pytest.raises(ValueError, match=rf"^{field} must be a positive integer"):
        GPTConfig(**{field: bad_value})


@pytest.mark.parametrize("field", ["dropout", "attn_dropout"])
@pytest.mark.parametrize("bad_value", [-0.1, 1.0, 1.5])
def test_dropout_outside_zero_one_names_the_field(field, bad_value):
    with pytest.raises(ValueError, match=rf"^{field} must be in \[0, 1\)"):
        BertConfig(**{field: bad_value})


@pytest.mark.parametrize("field", ["layer_norm_eps", "init_std"])
def test_non_positive_eps_or_init_std_names_the_field(field):
    with pytest.raises(ValueError, match=rf"^{field} must be positive"):
        GPTConfig(**{field: 0.0})


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown GPTConfig preset 'gpt3'.*small, gpt2, gpt2-medium"):
        GPTConfig.preset("gpt3")


def test_unknown_field_in_from_dict_is_named():
    with pytest.raises(ValueError, match=r"unknown BertConfig field\(s\) \['hidden_size'\]"):
        BertConfig.from_dict({"hidden_size": 768})


def test_unknown_field_in_preset_override_is_named():
    with pytest.raises(ValueError, match=r"\['n_heads'\]"):
        GPTConfig.preset("small", n_heads=4)


def test_bad_attn_impl_lists_the_choices():
    with pytest.raises(ValueError, match=r"^attn_impl must be one of manual, sdpa; got 'flash'"):
        GPTConfig(attn_impl="flash")


def test_bad_gelu_approximate_lists_the_choices():
    with pytest.raises(ValueError, match=r"^gelu_approximate must be one of tanh, none"):
        BertConfig(gelu_approximate="erf")


def test_bert_pad_token_id_outside_vocabulary_names_the_field():
    with pytest.raises(ValueError, match=r"^pad_token_id \(10\)"):
        BertConfig(vocab_size=10, pad_token_id=10)
