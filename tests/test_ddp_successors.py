"""DDP for BERT's successors (train_bert.py --config roberta-small, albert-small, electra-small): two processes
under torchrun (gloo, CPU) with batch 4 each train exactly like one process.

Two comparisons, as tests/test_ddp.py makes for train_gpt.py:

- Two processes x batch 4 against one process x batch 8: the same weights and the same training loss. This
  needs two things a GPT never needed. Masked-LM's loss is a mean over the masked tokens, which are random
  (15%, at random), so the two halves of a batch hold different counts (RoBERTa's first step here: 23 and 16)
  and the average of the halves' means is not the mean over the batch: each half's mean is weighed by its
  share of the step's masked tokens (MaskedLMTask.share). And ELECTRA's generator samples its replacements:
  the uniform numbers that decide them come with the batch (ElectraTask.draw), so each process samples what
  one process would for its half.
- Two processes x batch 4 against one process x batch 4 x 2 accumulation steps: the same halves, so every
  logged number, evaluations included, is the same (evaluations draw batch_size sequences a batch, 4 against
  8, so they can only be compared here).
"""

import json

import pytest
import torch
from safetensors.torch import load_file

import train_bert
from distributed_runs import rows, torchrun_mains, write_text
from minilm.training.checkpoint import MODEL_CLASSES

pytestmark = [pytest.mark.slow,  # 6 runs in this process, 3 in one torchrun launch (~25 s on 2 busy cores)
              pytest.mark.usefixtures("one_thread")]

TINY = ["--n_layer", "2", "--n_head", "2", "--n_embd", "32", "--n_inner", "64", "--max_seq_len", "32",
        "--block_size", "33", "--tokenizer_vocab_size", "60", "--max_iters", "6", "--lr", "1e-3",
        "--warmup_iters", "2", "--eval_interval", "3", "--eval_iters", "1", "--log_interval", "3",
        "--device", "cpu", "--progress", "false"]
PRESETS = {  # name -> train_bert.py flags
    "roberta-small": ["--config", "roberta-small"],
    "albert-small": ["--config", "albert-small", "--embedding_size", "16"],  # E <= H = 32
    "electra-small": ["--config", "electra-small", "--generator_n_embd", "8", "--generator_n_inner", "32"],
}
ONE_PROCESS = {"whole": ["--batch_size", "8"], "accum": ["--batch_size", "4", "--grad_accum_steps", "2"]}



def write_documents(path):
    """write_text's 300 lines as 12 documents of 25 (train_bert.py holds whole documents out for validation)."""
    lines = write_text(path).read_text().splitlines()
    path.write_text("\n\n".join("\n".join(lines[i:i + 25]) for i in range(0, len(lines), 25)))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> {"whole", "accum", "ddp"}: out_dirs of one process (batch 8; batch 4 x 2 accumulation steps)
    and of two processes (batch 4 each)."""
    tmp = tmp_path_factory.mktemp("ddp_successors")
    text, cache = write_documents(tmp / "text.txt"), tmp / "cache"
    out = {name: {kind: tmp / f"{name}-{kind}" for kind in (*ONE_PROCESS, "ddp")} for name in PRESETS}

    def argv(name, kind, batch):
        return [*PRESETS[name], "--data", str(text), "--out_dir", str(out[name][kind]), *TINY, *batch]

    # One process first, in this process (saving start-ups); they leave the tokenizer and data in the cache.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINILM_CACHE", str(cache))
        for name in PRESETS:
            for kind, batch in ONE_PROCESS.items():
                train_bert.main(argv(name, kind, batch))
    torchrun_mains(cache, "train_bert.py", [argv(name, "ddp", ["--batch_size", "4"]) for name in PRESETS])
    return out


def weights(out_dir):
    return load_file(out_dir / "ckpt" / "model.safetensors")


def assert_same_weights(a, b, leave_out=()):
    assert a.keys() == b.keys()
    for name in a:
        if not name.endswith(leave_out):
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-5, msg=lambda m: f"{name}: {m}")


def assert_same_rows(a, b):
    """Same steps, same names, every number within rel 1e-5 (the timings aside)."""
    assert [row.keys() for row in a] == [row.keys() for row in b]
    for x, y in zip(a, b):
        numbers = [k for k in x if k not in ("ms_per_step", "tokens_per_s")]
        assert {k: x[k] for k in numbers} == pytest.approx({k: y[k] for k in numbers}, rel=1e-5)


def training_losses(out_dir) -> list[float]:
    return [row["loss"] for row in rows(out_dir) if "lr" in row]  # the training rows (evaluations have no lr)


def initial_weights(out_dir) -> dict[str, torch.Tensor]:
    """The run's weights before its first step: train_bert.py seeds, then builds the model of its config."""
    config = json.loads((out_dir / "ckpt" / "config.json").read_text())
    model_cls, config_cls = MODEL_CLASSES[config["model_class"]]
    torch.manual_seed(config["train"]["seed"])
    return model_cls(config_cls.from_dict(config["model"])).state_dict()


@pytest.mark.parametrize("name", PRESETS)
def test_two_processes_end_with_the_weights_of_one_process_accumulating_the_same_halves(runs, name):
    assert_same_weights(weights(runs[name]["ddp"]), weights(runs[name]["accum"]))


@pytest.mark.parametrize("name", PRESETS)
def test_two_processes_log_the_losses_and_metrics_of_one_process_accumulating_the_same_halves(runs, name):
    assert [row["step"] for row in rows(runs[name]["ddp"])] == [3, 3, 6, 6]  # training, evaluation, twice
    assert_same_rows(rows(runs[name]["ddp"]), rows(runs[name]["accum"]))


@pytest.mark.parametrize("name", PRESETS)
def test_two_processes_end_with_the_weights_of_one_process_with_the_whole_batch(runs, name):
    """All but the key biases. Their true gradient is 0 (a bias added to every key shifts each query's
    scores by one constant, which softmax ignores), so backward gives them rounding noise (~1e-10), which
    AdamW divides by its own size: steps of a few % of lr, in directions the order of the sums decides."""
    assert_same_weights(weights(runs[name]["ddp"]), weights(runs[name]["whole"]), leave_out="attn.k_proj.bias")


@pytest.mark.parametrize("name", PRESETS)
def test_two_processes_log_the_loss_of_the_whole_batch(runs, name):
    """The training loss only: evaluations draw batch_size sequences a batch in each process (4 against 8)."""
    ddp, whole = (training_losses(runs[name][kind]) for kind in ("ddp", "whole"))
    assert len(ddp) == 2 and ddp == pytest.approx(whole, rel=1e-5)


@pytest.mark.parametrize("name", PRESETS)
def test_two_process_training_moved_the_weights_far_beyond_the_tolerance(runs, name):
    """Guards the comparisons above: most weights moved by far more than their tolerance."""
    state, start = weights(runs[name]["ddp"]), initial_weights(runs[name]["ddp"])
    moved = torch.cat([(w - start[n]).abs().flatten() for n, w in state.items()])
    assert (moved > 1e-4).float().mean() > 0.5
