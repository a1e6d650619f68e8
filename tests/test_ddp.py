"""DDP: two processes under torchrun (gloo, CPU) train exactly like one process with the same global batch."""

import json

import pytest
import torch
from safetensors.torch import load_file

import train_gpt
from distributed_runs import FLAGS, rows, torchrun, write_text
from minilm import GPT, GPTConfig

pytestmark = [pytest.mark.slow,  # three Python processes (~20 s on 2 busy cores)
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """(single process, batch 8) and (torchrun, 2 processes x batch 4): their out_dirs."""
    tmp = tmp_path_factory.mktemp("ddp")
    text = write_text(tmp / "text.txt")
    single, ddp = tmp / "single", tmp / "ddp"
    # The single run goes first (in this process, saving a start-up) and prepares the data in the
    # cache; the DDP run reuses it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINILM_CACHE", str(tmp / "cache"))
        train_gpt.main(["--data", str(text), "--out_dir", str(single), "--batch_size", "8", *FLAGS])
    torchrun(tmp / "cache", "--data", str(text), "--out_dir", str(ddp), "--batch_size", "4", *FLAGS)
    return single, ddp


def test_two_process_ddp_ends_with_the_single_process_weights(two_runs):
    single, ddp = (load_file(out / "ckpt" / "model.safetensors") for out in two_runs)
    assert single.keys() == ddp.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=0, atol=1e-5)


def test_two_process_ddp_training_moved_the_weights_far_beyond_the_tolerance(two_runs):
    """Guards the test above: most weights moved by far more than its tolerance."""
    state = load_file(two_runs[1] / "ckpt" / "model.safetensors")
    config = json.loads((two_runs[1] / "ckpt" / "config.json").read_text())
    torch.manual_seed(config["train"]["seed"])  # train_gpt.py's seed_everything before building the model
    start = GPT(GPTConfig.from_dict(config["model"])).state_dict()
    moved = torch.cat([(state[n] - start[n]).abs().flatten() for n in state])
    assert (moved > 1e-4).float().mean() > 0.5


def test_two_process_ddp_logs_the_loss_of_the_whole_batch(two_runs):
    single, ddp = ([row for row in rows(out) if "loss" in row] for out in two_runs)
    assert [row["step"] for row in ddp] == [row["step"] for row in single] == [4, 8]
    for a, b in zip(ddp, single):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
