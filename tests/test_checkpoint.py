"""Checkpoint folders: atomic writes that survive a crash, clear errors for corrupt files, safe loading,
wrapper prefixes kept out of the file, tied weights stored once."""

import os
import pickle

import pytest
import torch
import torch.distributed as dist
from safetensors import safe_open

from minilm import GPT, GPTConfig
from minilm.training import checkpoint
from minilm.training.checkpoint import (
    CheckpointError, load_checkpoint, load_model_weights, model_state_dict, resolve_checkpoint, save_checkpoint,
)
from minilm.training.trainer import Task, TrainConfig, Trainer


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=16))


def save(folder, seed=0, step=1):
    """A complete checkpoint of tiny_gpt(seed); returns that model."""
    model = tiny_gpt(seed)
    save_checkpoint(folder, model, {"model_class": "GPT", "step": step}, {"step": step, "moments": torch.ones(3)})
    return model


def assert_holds_weights_of(folder, model):
    state_dict, config, train_state = load_checkpoint(folder)
    for name, tensor in model_state_dict(model).items():
        assert torch.equal(state_dict[name], tensor), name
    return config, train_state


def test_checkpoint_round_trips_weights_config_and_train_state(tmp_path):
    model = save(tmp_path / "ckpt", step=7)
    config, train_state = assert_holds_weights_of(tmp_path / "ckpt", model)
    assert config == {"model_class": "GPT", "step": 7}
    assert train_state["step"] == 7 and torch.equal(train_state["moments"], torch.ones(3))


def fail_on_second_call(function):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return function(*args, **kwargs)

    return wrapper


def test_weights_write_interrupted_part_way_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    def half_written(state_dict, path):
        with open(path, "wb") as f:
            f.write(b"\x00" * 10)  # a few bytes out, then the crash
        raise OSError("disk full (simulated)")

    first = save(tmp_path / "ckpt", seed=0)
    monkeypatch.setattr(checkpoint, "save_file", half_written)
    with pytest.raises(OSError):
        save(tmp_path / "ckpt", seed=1, step=2)
    config, _ = assert_holds_weights_of(tmp_path / "ckpt", first)
    assert config["step"] == 1


def test_train_state_write_interrupted_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    first = save(tmp_path / "ckpt", seed=0)
    monkeypatch.setattr(torch, "save", fail_on_second_call(torch.save))
    save(tmp_path / "other", seed=2)  # the first torch.save call goes through
    with pytest.raises(OSError):
        save(tmp_path / "ckpt", seed=1, step=2)
    config, train_state = assert_holds_weights_of(tmp_path / "ckpt", first)
    assert config["step"] == 1 and train_state["step"] == 1


def test_swap_interrupted_between_renames_resolves_to_the_old_checkpoint(tmp_path, monkeypatch):
    first = save(tmp_path / "ckpt", seed=0)
    monkeypatch.setattr(os, "replace", fail_on_second_call(os.replace))  # ckpt -> ckpt.old, then the crash
    with pytest.raises(OSError):
        save(tmp_path / "ckpt", seed=1, step=2)
    assert not (tmp_path / "ckpt").exists() and (tmp_path / "ckpt.old").is_dir()
    assert resolve_checkpoint(tmp_path / "ckpt") == tmp_path / "ckpt.old"
    assert_holds_weights_of(tmp_path / "ckpt", first)


def test_save_after_an_interrupted_swap_replaces_the_old_checkpoint(tmp_path, monkeypatch):
    save(tmp_path / "ckpt", seed=0)
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", fail_on_second_call(os.replace))
        with pytest.raises(OSError):
            save(tmp_path / "ckpt", seed=1, step=2)
    newest = save(tmp_path / "ckpt", seed=3, step=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert_holds_weights_of(tmp_path / "ckpt", newest)


def test_truncated_weights_raise_checkpoint_error_naming_the_file(tmp_path):
    save(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt or truncated"):
        load_checkpoint(tmp_path / "ckpt")


def test_garbage_train_state_raises_checkpoint_error_naming_the_file(tmp_path):
    save(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "train_state.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match=r"train_state\.pt could not be read safely"):
        load_checkpoint(tmp_path / "ckpt")


class RunsCodeWhenUnpickled:
    """What a malicious train_state.pt would hold: unpickling it creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_train_state_holding_an_arbitrary_object_is_refused_without_running_it(tmp_path):
    save(tmp_path / "ckpt")
    marker = tmp_path / "code-ran"
    with open(tmp_path / "ckpt" / "train_state.pt", "wb") as f:
        torch.save({"step": 1, "payload": RunsCodeWhenUnpickled(marker)}, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match=r"train_state\.pt could not be read safely"):
        load_checkpoint(tmp_path / "ckpt")
    assert not marker.exists()


def test_missing_config_raises_checkpoint_error_naming_the_folder(tmp_path):
    save(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").unlink()
    with pytest.raises(CheckpointError, match=rf"no checkpoint at {tmp_path / 'ckpt'}.*config\.json"):
        load_checkpoint(tmp_path / "ckpt")


def test_invalid_json_config_raises_checkpoint_error_naming_the_file(tmp_path):
    save(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").write_text('{"model_class": "GPT", ')
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON"):
        load_checkpoint(tmp_path / "ckpt")


def test_weights_only_checkpoint_cannot_be_resumed(tmp_path):
    save_checkpoint(tmp_path / "best", tiny_gpt(), {"model_class": "GPT"})
    with pytest.raises(CheckpointError, match=r"no train_state\.pt.*cannot be resumed"):
        load_checkpoint(tmp_path / "best")
    assert load_checkpoint(tmp_path / "best", with_train_state=False)[2] is None


def test_resume_without_a_checkpoint_names_the_missing_folder(tmp_path):
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), resume=True, device="cpu", progress=False)
    with pytest.raises(CheckpointError, match=rf"no checkpoint at {tmp_path / 'run' / 'ckpt'}"):
        Trainer(tiny_gpt(), Task(), cfg, {})


def test_compiled_model_state_dict_has_the_plain_names(tmp_path):
    model = tiny_gpt()
    compiled = torch.compile(model)  # wraps lazily: nothing is compiled until it runs
    assert any(name.startswith("_orig_mod.") for name in compiled.state_dict())
    assert model_state_dict(compiled).keys() == model_state_dict(model).keys()
    save_checkpoint(tmp_path / "ckpt", compiled, {})
    with safe_open(tmp_path / "ckpt" / "model.safetensors", "pt") as f:
        assert set(f.keys()) == set(model_state_dict(model))


def test_ddp_model_state_dict_has_the_plain_names(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = tiny_gpt()
        wrapped = torch.compile(torch.nn.parallel.DistributedDataParallel(model))
        assert model_state_dict(wrapped).keys() == model_state_dict(model).keys()
    finally:
        dist.destroy_process_group()


def test_tied_weights_are_stored_once(tmp_path):
    save_checkpoint(tmp_path / "ckpt", tiny_gpt(), {})
    with safe_open(tmp_path / "ckpt" / "model.safetensors", "pt") as f:
        names = set(f.keys())
    assert "wte.weight" in names and "lm_head.weight" not in names


def test_tied_weights_load_back_tied(tmp_path):
    save_checkpoint(tmp_path / "ckpt", tiny_gpt(seed=0), {})
    model = tiny_gpt(seed=1)
    load_model_weights(model, load_checkpoint(tmp_path / "ckpt", with_train_state=False)[0])
    assert model.lm_head.weight is model.wte.weight
    assert torch.equal(model.wte.weight, tiny_gpt(seed=0).wte.weight)


def test_weights_of_another_shape_name_the_tensor(tmp_path):
    save_checkpoint(tmp_path / "ckpt", tiny_gpt(), {})
    state_dict = load_checkpoint(tmp_path / "ckpt", with_train_state=False)[0]
    other = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(CheckpointError, match=r"tensor wte\.weight: checkpoint has shape \(16, 16\), "
                                              r"model expects \(20, 16\)"):
        load_model_weights(other, state_dict)


def test_weights_of_a_deeper_model_name_the_unexpected_tensors(tmp_path):
    deeper = GPT(GPTConfig(vocab_size=16, block_size=8, n_layer=2, n_head=2, n_embd=16))
    save_checkpoint(tmp_path / "ckpt", deeper, {})
    state_dict = load_checkpoint(tmp_path / "ckpt", with_train_state=False)[0]
    with pytest.raises(CheckpointError, match=r"unexpected \[.*'blocks\.1\."):
        load_model_weights(tiny_gpt(), state_dict)
