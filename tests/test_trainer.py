"""The shared training loop: exact resume after Ctrl-C, accumulation, mixed precision, NaN stop,
the learning-rate schedule and which parameters get weight decay."""

import json
import math
import signal

import pytest
import torch

from minilm import GPT, GPTConfig
from minilm.training.trainer import Task, TrainConfig, Trainer, learning_rate, make_optimizer, seed_everything

VOCAB, BLOCK = 16, 16


pytestmark = pytest.mark.usefixtures("one_thread")


class ToyTask(Task):
    """Random windows of a fixed random token stream; every draw comes from the generator it is given.

    Records the loss of each training micro-batch; interrupt_at=k presses Ctrl-C (a real SIGINT) in the k-th
    training loss (after the forward pass has drawn its dropout masks), interrupt_eval_at=k in the k-th
    evaluation; nan_at=k returns NaN there.
    """

    def __init__(self, interrupt_at=None, nan_at=None, interrupt_eval_at=None):
        self.tokens = torch.randint(VOCAB, (4000,), generator=torch.Generator().manual_seed(0))
        self.interrupt_at, self.nan_at, self.interrupt_eval_at = interrupt_at, nan_at, interrupt_eval_at
        self.train_losses, self.train_calls, self.eval_calls = [], 0, 0

    def get_batch(self, split, batch_size, generator):
        offset = 0 if split == "train" else 2000  # the two splits read different halves
        starts = offset + torch.randint(2000 - BLOCK - 1, (batch_size,), generator=generator)
        windows = torch.stack([self.tokens[s: s + BLOCK + 1] for s in starts.tolist()])  # (B, T+1)
        return {"input_ids": windows[:, :-1], "targets": windows[:, 1:]}

    def loss(self, model, batch):
        _, loss = model(batch["input_ids"], targets=batch["targets"])
        if model.training:
            self.train_calls += 1
            if self.train_calls == self.interrupt_at:
                signal.raise_signal(signal.SIGINT)
            if self.train_calls == self.nan_at:
                loss = loss * float("nan")
            self.train_losses.append(loss.item())
        return loss

    def evaluate(self, model, cfg, device):
        self.eval_calls += 1
        if self.eval_calls == self.interrupt_eval_at:
            signal.raise_signal(signal.SIGINT)
        return super().evaluate(model, cfg, device)


def tiny_gpt(dropout=0.1):
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=2, n_head=2, n_embd=32, dropout=dropout))


def train_config(out_dir, **overrides):
    values = dict(out_dir=str(out_dir), max_iters=8, batch_size=4, lr=1e-2, warmup_iters=2, eval_interval=3,
                  eval_iters=2, log_interval=1, device="cpu", progress=False, seed=0)
    return TrainConfig(**{**values, **overrides})


def run(out_dir, task, dropout=0.1, **overrides):
    """Seed, build a fresh model, train; returns the Trainer (its .model holds the final weights)."""
    seed_everything(0)
    trainer = Trainer(tiny_gpt(dropout), task, train_config(out_dir, **overrides), {"model_class": "GPT"})
    trainer.run()
    return trainer


def interrupted_then_resumed(out_dir, **interrupt):
    """Train until the task presses Ctrl-C, then resume in a new Trainer: (losses, trainer)."""
    first = ToyTask(**interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(out_dir, first)
    second = ToyTask()
    resumed = run(out_dir, second, resume=True)
    return first.train_losses + second.train_losses, resumed


def assert_same_weights(model_a, model_b):
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name


def logged_rows(out_dir):
    """metrics.jsonl without the timing columns, which differ from run to run."""
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("ms_per_step", "tokens_per_s")} for row in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("uninterrupted")
    task = ToyTask()
    trainer = run(out_dir, task)
    return task.train_losses, trainer, out_dir


@pytest.fixture(scope="module")
def resumed_after_step_interrupt(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("interrupted")
    losses, trainer = interrupted_then_resumed(out_dir, interrupt_at=5)  # inside step 5, after eval at 3
    return losses, trainer, out_dir


def test_resume_after_interrupt_repeats_the_uninterrupted_losses_bitwise(uninterrupted, resumed_after_step_interrupt):
    assert len(uninterrupted[0]) == 8
    assert resumed_after_step_interrupt[0] == uninterrupted[0]


def test_resume_after_interrupt_ends_with_bitwise_equal_weights(uninterrupted, resumed_after_step_interrupt):
    assert_same_weights(resumed_after_step_interrupt[1].model, uninterrupted[1].model)


def test_resume_after_interrupt_logs_every_step_and_evaluation_once(uninterrupted, resumed_after_step_interrupt):
    assert logged_rows(resumed_after_step_interrupt[2]) == logged_rows(uninterrupted[2])


def test_interrupt_saves_the_last_completed_step(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, ToyTask(interrupt_at=5))
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["step"] == 5  # step 5 finishes first


def test_resume_after_interrupt_during_evaluation_repeats_the_uninterrupted_losses(tmp_path, uninterrupted):
    losses, trainer = interrupted_then_resumed(tmp_path, interrupt_eval_at=2)  # the evaluation at step 6
    assert losses == uninterrupted[0]
    assert_same_weights(trainer.model, uninterrupted[1].model)


class GradientRecorder(ToyTask):
    def on_gradients(self, model, step):
        self.gradients = {name: p.grad.clone() for name, p in model.named_parameters()}


def one_step(tmp_path, batch_size, accum):
    """(gradients, weights) after one optimizer step."""
    seed_everything(0)
    task = GradientRecorder()
    cfg = train_config(tmp_path, batch_size=batch_size, grad_accum_steps=accum, warmup_iters=0, lr=1e-3)
    trainer = Trainer(tiny_gpt(dropout=0.0), task, cfg, {})
    trainer.train_step()
    return task.gradients, trainer.model.state_dict()


def test_gradient_accumulation_equals_one_larger_batch(tmp_path):
    accumulated, large = one_step(tmp_path, batch_size=2, accum=3), one_step(tmp_path, batch_size=6, accum=1)
    for name, grad in accumulated[0].items():
        torch.testing.assert_close(grad, large[0][name], rtol=1e-5, atol=1e-7)
    # Adam's first step is lr * g / (|g| + eps): a gradient near eps amplifies float noise, hence atol 1e-5.
    for name, weight in accumulated[1].items():
        torch.testing.assert_close(weight, large[1][name], rtol=0, atol=1e-5)


def test_accumulated_micro_batches_differ_from_each_other(tmp_path):
    """Guards the test above: the k micro-batches must be different sequences, not one repeated."""
    seed_everything(0)
    task = ToyTask()
    cfg = train_config(tmp_path, batch_size=2, grad_accum_steps=3, warmup_iters=0)
    Trainer(tiny_gpt(dropout=0.0), task, cfg, {}).train_step()
    assert len(set(task.train_losses)) == 3


def mean_loss_before_and_after(tmp_path, dtype, steps=15):
    """Train on one fixed batch; the mean loss of the first and the last three steps."""

    class OneBatch(ToyTask):
        def get_batch(self, split, batch_size, generator):
            return super().get_batch(split, batch_size, torch.Generator().manual_seed(1))

    task = OneBatch()
    trainer = run(tmp_path, task, dropout=0.0, dtype=dtype, max_iters=steps, eval_interval=steps, lr=3e-3)
    losses = task.train_losses
    return sum(losses[:3]) / 3, sum(losses[-3:]) / 3, trainer


def test_bfloat16_autocast_steps_reduce_the_loss(tmp_path):
    before, after, _ = mean_loss_before_and_after(tmp_path, "bfloat16")
    assert after < before - 0.3


def test_float16_autocast_steps_reduce_the_loss_through_the_grad_scaler(tmp_path):
    before, after, trainer = mean_loss_before_and_after(tmp_path, "float16")
    assert trainer.scaler.is_enabled()
    assert after < before - 0.3


def test_float16_grad_scaler_state_is_saved_in_train_state(tmp_path):
    _, _, trainer = mean_loss_before_and_after(tmp_path, "float16", steps=3)
    state = torch.load(tmp_path / "ckpt" / "train_state.pt", weights_only=True)
    assert state["scaler"]["scale"] == trainer.scaler.get_scale() > 0


def test_nan_loss_stops_training_naming_the_step(tmp_path):
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 3\b"):
        run(tmp_path, ToyTask(nan_at=3), dropout=0.0)


def test_nan_loss_is_not_applied_to_the_weights(tmp_path):
    seed_everything(0)
    trainer = Trainer(tiny_gpt(dropout=0.0), ToyTask(nan_at=3), train_config(tmp_path), {})
    for _ in range(2):
        trainer.train_step()
        trainer.step += 1
    before = {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}
    with pytest.raises(FloatingPointError):
        trainer.train_step()
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
        assert torch.isfinite(tensor).all(), name


def test_float16_nan_step_is_skipped_by_the_scaler_and_counted(tmp_path):
    trainer = run(tmp_path, ToyTask(nan_at=3), dropout=0.0, dtype="float16", max_iters=5, eval_interval=5)
    assert trainer.step == 5 and trainer.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_patience_stops_after_that_many_evaluations_without_improvement(tmp_path):
    class Worsening(ToyTask):
        def evaluate(self, model, cfg, device):
            self.eval_calls += 1
            return {"val_loss": float(self.eval_calls)}  # 1, 2, 3, ...: only the first is a best

    trainer = run(tmp_path, Worsening(), max_iters=20, eval_interval=2, patience=2)
    assert trainer.step == 6  # best at step 2, no better at 4 and 6
    assert json.loads((tmp_path / "best" / "config.json").read_text())["step"] == 2


def test_learning_rate_warms_up_linearly_then_follows_the_cosine_down_to_min_lr():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_iters=4, lr_decay_iters=104, max_iters=200)
    expected = {
        0: 1 / 5, 3: 4 / 5,  # warm-up: lr * (t + 1) / (W + 1)
        4: 1.0,  # the peak
        54: 0.55,  # halfway through the cosine: (lr + min_lr) / 2
        29: 0.1 + 0.45 * (1 + math.cos(math.pi / 4)),  # a quarter of the way
        104: 0.1, 150: 0.1,  # the floor from lr_decay_iters on
    }
    for step, lr in expected.items():
        assert learning_rate(step, cfg) == pytest.approx(lr, abs=1e-12), step


def test_learning_rate_defaults_min_lr_to_a_tenth_and_decays_until_max_iters():
    cfg = TrainConfig(lr=2.0, warmup_iters=0, max_iters=10)
    assert learning_rate(0, cfg) == pytest.approx(2.0)
    assert learning_rate(5, cfg) == pytest.approx(1.1)
    assert learning_rate(10, cfg) == pytest.approx(0.2)


def test_weight_decay_applies_to_matrices_only():
    model = tiny_gpt()
    optimizer = make_optimizer(model, TrainConfig(weight_decay=0.1), "cpu")
    names = {id(p): name for name, p in model.named_parameters()}
    decayed = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
    plain = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert decayed == {n for n, p in model.named_parameters() if p.dim() == 2}
    assert {"wte.weight", "wpe.weight", "blocks.0.mlp.fc_in.weight"} <= decayed
    assert plain == {n for n, p in model.named_parameters() if n.endswith("bias") or ".ln" in n or "ln_f" in n}
    assert decayed.isdisjoint(plain) and len(decayed) + len(plain) == len(list(model.parameters()))
