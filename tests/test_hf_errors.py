"""Bad Hugging Face folders: each gets a clear error that names the problem (no transformers needed)."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from minilm import GPT, Bert, BertConfig, GPTConfig, from_pretrained, save_pretrained
from common.errors import CheckpointError

TINY_GPT = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=8)


@pytest.fixture
def gpt_folder(tmp_path):
    torch.manual_seed(0)
    save_pretrained(GPT(TINY_GPT), tmp_path)
    return tmp_path


def rewrite_weights(folder, change):
    """Apply change(dict of tensors) to the folder's model.safetensors."""
    tensors = load_file(folder / "model.safetensors")
    change(tensors)
    save_file(tensors, folder / "model.safetensors")


def rewrite_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


class NotATensor:
    """Any class: unpickling it would mean importing and running code from the file."""


def test_path_that_is_not_a_folder_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        from_pretrained(tmp_path / "nowhere", GPT)


def test_folder_without_config_is_refused(gpt_folder):
    (gpt_folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="has no config.json"):
        from_pretrained(gpt_folder, GPT)


def test_folder_without_weights_is_refused(gpt_folder):
    (gpt_folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no weights: expected model.safetensors or pytorch_model.bin"):
        from_pretrained(gpt_folder, GPT)


def test_config_for_another_architecture_is_refused(gpt_folder):
    rewrite_config(gpt_folder, model_type="llama")
    with pytest.raises(CheckpointError, match="model_type 'llama', expected 'gpt2'"):
        from_pretrained(gpt_folder, GPT)


def test_gpt2_folder_loaded_as_bert_points_to_the_gpt_loader(gpt_folder):
    with pytest.raises(CheckpointError, match=r"load it with minilm.from_pretrained\(path, model_class=GPT\)"):
        from_pretrained(gpt_folder, Bert)


def test_unsupported_config_option_is_refused(gpt_folder):
    rewrite_config(gpt_folder, scale_attn_by_inverse_layer_idx=True)
    with pytest.raises(CheckpointError, match="scale_attn_by_inverse_layer_idx=True"):
        from_pretrained(gpt_folder, GPT)


def test_truncated_safetensors_is_refused(gpt_folder):
    path = gpt_folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        from_pretrained(gpt_folder, GPT)


def test_wrong_shape_names_the_tensor_and_both_shapes(gpt_folder):
    rewrite_weights(gpt_folder, lambda t: t.update({"transformer.h.1.mlp.c_fc.weight": torch.zeros(8, 30)}))
    with pytest.raises(CheckpointError, match=r"'h\.1\.mlp\.c_fc\.weight' has shape \(8, 30\) .* expects \(8, 32\)"):
        from_pretrained(gpt_folder, GPT)


def test_missing_tensor_is_named(gpt_folder):
    rewrite_weights(gpt_folder, lambda t: t.pop("transformer.ln_f.bias"))
    with pytest.raises(CheckpointError, match=r"1 tensor\(s\) the model needs are missing, e\.g\. \['ln_f\.bias'\]"):
        from_pretrained(gpt_folder, GPT)


def test_unexpected_tensor_is_reported(gpt_folder):
    rewrite_weights(gpt_folder, lambda t: t.update({"transformer.h.0.adapter.weight": torch.zeros(2)}))
    with pytest.warns(UserWarning, match=r"not used by GPT: \['h\.0\.adapter\.weight'\]"):
        from_pretrained(gpt_folder, GPT)


def test_untied_lm_head_is_refused(gpt_folder):
    rewrite_weights(gpt_folder, lambda t: t.update({"lm_head.weight": torch.zeros(50, 8)}))
    with pytest.raises(CheckpointError, match="lm_head.weight differs from wte.weight"):
        from_pretrained(gpt_folder, GPT)


def test_pickle_that_weights_only_refuses_is_refused(gpt_folder):
    (gpt_folder / "model.safetensors").unlink()
    torch.save({"wte.weight": torch.zeros(50, 8), "extra": NotATensor()}, gpt_folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"torch.load\(weights_only=True\) refused it"):
        from_pretrained(gpt_folder, GPT)


def test_bert_shape_mismatch_from_config_is_refused(tmp_path):
    save_pretrained(Bert(BertConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=8)), tmp_path)
    rewrite_config(tmp_path, max_position_embeddings=32)  # the config no longer describes the weights
    with pytest.raises(CheckpointError, match=r"'embeddings\.position_embeddings\.weight' has shape \(16, 8\)"):
        from_pretrained(tmp_path, Bert)


@pytest.mark.parametrize("model_cls, config", [(GPT, TINY_GPT), (Bert, BertConfig(vocab_size=50, block_size=16,
                                                                                   n_layer=1, n_head=2, n_embd=8))])
def test_bias_free_model_cannot_be_saved_as_hugging_face(tmp_path, model_cls, config):
    model = model_cls(type(config)(**{**config.to_dict(), "bias": False}))
    with pytest.raises(ValueError, match="bias=False.*only bias=True models"):
        save_pretrained(model, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()
