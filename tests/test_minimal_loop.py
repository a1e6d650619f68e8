"""The minimal loop (minilm/training/minimal_loop.py) is the full Trainer without the engineering: the same
model, data, seed and settings give the same losses, bit for bit on a CPU in float32."""

import numpy as np
import pytest
import torch

from minilm import GPT, GPTConfig
from minilm.training.lm_task import LanguageModelTask
from minilm.training.minimal_loop import train
from minilm.training.trainer import Trainer, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TOKENS = torch.randint(20, (5000,), generator=torch.Generator().manual_seed(0)).numpy().astype("uint16")


def fresh_gpt(dropout: float):
    torch.manual_seed(1337)
    return GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=dropout))


def settings(out_dir) -> TrainConfig:
    return TrainConfig(out_dir=str(out_dir), max_iters=20, batch_size=8, lr=3e-3, warmup_iters=5,
                       eval_interval=1000, log_interval=1000, device="cpu", progress=False, seed=7)


class RecordingTask(LanguageModelTask):
    def __init__(self, tokens, block_size):
        super().__init__(tokens, block_size)
        self.losses = []

    def loss(self, model, batch):
        loss = super().loss(model, batch)
        if model.training:
            self.losses.append(loss.item())
        return loss


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_the_minimal_loop_gives_the_trainers_losses_bit_for_bit(tmp_path, dropout):
    task = RecordingTask({"train": TOKENS, "val": TOKENS}, block_size=16)
    torch.manual_seed(0)  # the Trainer and the minimal loop start from the same global RNG state
    Trainer(fresh_gpt(dropout), task, settings(tmp_path / "trainer"), {"model_class": "GPT"}).run()
    torch.manual_seed(0)
    minimal = train(fresh_gpt(dropout), TOKENS, settings(tmp_path / "minimal"))
    assert len(minimal) == 20 and minimal == task.losses


def test_the_minimal_loop_learns_a_predictable_stream():
    counting = np.tile(np.arange(20, dtype=np.uint16), 250)  # 0 1 2 ... 19 0 1 ...: each token gives the next
    losses = train(fresh_gpt(0.0), counting, settings("unused"))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_the_docstring_example_runs_as_written():
    """The example a reader copies first (minimal_loop.py's docstring), run with 2 steps instead of 200."""
    import textwrap

    from minilm.training import minimal_loop
    example = textwrap.dedent(minimal_loop.__doc__.split("\n\n", 2)[2])
    assert "max_iters=200" in example
    namespace = {}
    exec(example.replace("max_iters=200", "max_iters=2"), namespace)
    assert len(namespace["losses"]) == 2 and all(np.isfinite(namespace["losses"]))
