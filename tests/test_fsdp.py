"""FSDP2 (--fsdp): two processes holding half of every tensor each train like one process, and write
checkpoints that load and resume without FSDP (and the other way round)."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

import finetune
import train_gpt
from common.errors import ConfigError
from distributed_runs import FLAGS, rows, torchrun, write_text
from finetune_fixtures import save_gpt_base

pytestmark = [pytest.mark.slow,  # two torchrun launches of two processes each (~40 s on 2 busy cores)
              pytest.mark.usefixtures("one_thread")]

RESUME_TO_12 = ["--resume", "--max_iters", "12"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Out_dirs of: one process (batch 8) to step 8 and resumed to 12; FSDP, 2 processes x batch 2 x 2
    accumulation steps, to step 8; FSDP's checkpoint resumed to 12 in one process; the one-process
    checkpoint resumed to 12 under FSDP."""
    tmp = tmp_path_factory.mktemp("fsdp")
    text, cache = write_text(tmp / "text.txt"), tmp / "cache"
    out = {name: tmp / name for name in ("single", "single_12", "fsdp", "fsdp_then_single", "single_then_fsdp")}

    def single(out_dir, *args):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MINILM_CACHE", str(cache))
            train_gpt.main(["--data", str(text), "--out_dir", str(out_dir), "--batch_size", "8", *FLAGS, *args])

    single(out["single"])
    shutil.copytree(out["single"], out["single_12"])
    single(out["single_12"], *RESUME_TO_12)
    torchrun(cache, "--data", str(text), "--out_dir", str(out["fsdp"]), "--fsdp", "--batch_size", "2",
             "--grad_accum_steps", "2", *FLAGS)
    shutil.copytree(out["fsdp"], out["fsdp_then_single"])
    single(out["fsdp_then_single"], *RESUME_TO_12)
    shutil.copytree(out["single"], out["single_then_fsdp"])
    torchrun(cache, "--data", str(text), "--out_dir", str(out["single_then_fsdp"]), "--fsdp", "--batch_size", "4",
             *FLAGS, *RESUME_TO_12)
    return out


def weights(out_dir):
    return load_file(out_dir / "ckpt" / "model.safetensors")


def assert_same_weights(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=atol)


def test_fsdp_ends_with_the_single_process_weights(runs):
    assert_same_weights(weights(runs["fsdp"]), weights(runs["single"]))


def test_fsdp_checkpoint_stores_each_tied_matrix_once_like_a_single_process_one(runs):
    assert "lm_head.weight" not in weights(runs["fsdp"])  # it is wte.weight


def test_fsdp_logs_the_single_process_losses(runs):
    fsdp, single = ([row for row in rows(runs[name]) if "loss" in row] for name in ("fsdp", "single"))
    assert [row["step"] for row in fsdp] == [row["step"] for row in single] == [4, 8]
    for a, b in zip(fsdp, single):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_fsdp_training_moved_the_weights_far_beyond_the_tolerance(runs):
    """Guards the tests above: training changed most weights between step 8 and step 12 by far more
    than the tolerance, so equal weights mean equal training."""
    at_8, at_12 = weights(runs["single"]), weights(runs["single_12"])
    moved = torch.cat([(at_12[n] - at_8[n]).abs().flatten() for n in at_8])
    assert (moved > 1e-4).float().mean() > 0.5


def test_fsdp_checkpoint_resumes_exactly_without_fsdp(runs):
    assert_same_weights(weights(runs["fsdp_then_single"]), weights(runs["single_12"]))


def test_single_process_checkpoint_resumes_exactly_under_fsdp(runs):
    """The optimizer's moments reach each process's shards: without them the steps would differ."""
    assert_same_weights(weights(runs["single_then_fsdp"]), weights(runs["single_12"]))


def test_fsdp_optimizer_state_is_the_ordinary_numbered_one(runs):
    saved = [torch.load(runs[name] / "ckpt" / "train_state.pt", weights_only=True)["optimizer"]
             for name in ("fsdp", "single")]
    assert saved[0]["state"].keys() == saved[1]["state"].keys()
    assert [g["params"] for g in saved[0]["param_groups"]] == [g["params"] for g in saved[1]["param_groups"]]
    for i, state in saved[1]["state"].items():
        torch.testing.assert_close(saved[0]["state"][i]["exp_avg_sq"], state["exp_avg_sq"], rtol=1e-4, atol=1e-9)


def test_fsdp_in_one_process_is_refused(tmp_path):
    text = write_text(tmp_path / "text.txt")
    with pytest.raises(ConfigError, match="torchrun"):
        train_gpt.main(["--data", str(text), "--out_dir", str(tmp_path / "run"), "--fsdp", *FLAGS])
    assert not (tmp_path / "run" / "ckpt").exists()


def test_fsdp_for_fine_tuning_is_refused_before_training(tmp_path):
    """finetune.py saves only the trained tensors; FSDP gathers whole models, so it says to use DDP."""
    text = "the film was good. the plot was bad, very dull.\n" * 20
    base = save_gpt_base(tmp_path / "base", text)
    (tmp_path / "text.txt").write_text(text)
    with pytest.raises(ConfigError, match="fine-tun.*without --fsdp"):
        finetune.main(["--task", "lm", "--base", str(base), "--data", str(tmp_path / "text.txt"), "--fsdp",
                       "--max_iters", "2", "--max_length", "32", "--out_dir", str(tmp_path / "run"),
                       "--device", "cpu", "--progress", "false"])
    assert not (tmp_path / "run" / "ckpt").exists()
