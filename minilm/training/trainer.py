"""The one training loop that train_gpt.py, train_bert.py and finetune.py share.

What differs between them is a `Task`: how to draw a batch, how to compute the loss on it, and how
to evaluate. Everything else lives here once: AdamW with warm-up + cosine decay, gradient
accumulation and clipping, mixed precision, torch.compile, DDP or FSDP, evaluation, the best checkpoint,
early stopping, exact resume and Ctrl-C. docs/training.md has the formulas.
"""

import contextlib
import math
import signal
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from common.errors import ConfigError, DataError

from . import fsdp
from .checkpoint import checkpoint_to_resume, load_checkpoint, load_model_weights, save_checkpoint, tied_names
from .distributed import init_distributed, resolve_device, shutdown_distributed
from .metrics_log import MetricsLog
from .run_dir import claim_out_dir
from .stopping import StopRequest, TrainingDiverged, disk_full_is_an_error, stop_exception
from .train_config import DTYPES, TrainConfig
from .throughput import device_name, flops_per_token, peak_flops

class Task:
    """What a training script supplies. Batches are dicts of tensors whose first dimension is the batch."""

    splits = ("train", "val")

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, model, cfg: TrainConfig, device: str) -> dict[str, float]:
        """Mean loss on each split over the same eval_iters batches every time (a fixed seed)."""
        metrics = {}
        for split in self.splits:
            generator = torch.Generator().manual_seed(0)
            losses = [self.loss(model, to_device(self.get_batch(split, cfg.batch_size, generator), device)).item()
                      for _ in range(cfg.eval_iters)]
            metrics[f"{split}_loss"] = sum(losses) / len(losses)
        return metrics

    def on_step_start(self, step: int) -> None:
        """Called before each training step draws its batch (BERT's task shortens its pairs early on)."""

    def on_gradients(self, model, step: int) -> None:
        """Called after backward, before the optimizer step (AdaLoRA scores its ranks here)."""

    def count_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return next(iter(batch.values())).numel()


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up from 0 to lr, then a cosine from lr down to min_lr at lr_decay_iters."""
    min_lr = cfg.min_lr if cfg.min_lr is not None else cfg.lr / 10
    decay_iters = cfg.lr_decay_iters if cfg.lr_decay_iters is not None else cfg.max_iters
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    if step >= decay_iters:
        return min_lr
    progress = (step - cfg.warmup_iters) / max(1, decay_iters - cfg.warmup_iters)  # 0 -> 1
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


def make_optimizer(model, cfg: TrainConfig, device: str) -> torch.optim.AdamW:
    """AdamW; weight decay only on matrices (linear weights, embeddings), not on biases or LayerNorms."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.startswith("cuda"))


def to_device(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    """The batch on device. For a GPU the tensors are first put in pinned (page-locked) memory, from which
    the copy can run asynchronously (non_blocking) while the GPU still works on the previous step."""
    pin = device.startswith("cuda")
    return {name: (t.pin_memory() if pin else t).to(device, non_blocking=True) for name, t in batch.items()}


def split_batch(batch: dict[str, torch.Tensor], n_pieces: int) -> list[dict[str, torch.Tensor]]:
    """Cut a batch into n_pieces equal slices along the batch dimension."""
    pieces = {name: tensor.chunk(n_pieces) for name, tensor in batch.items()}
    return [{name: pieces[name][i] for name in batch} for i in range(n_pieces)]


def share_of_step(counts: dict[str, int], step_counts: dict[str, int], what: str) -> float:
    """The weight of a slice's mean over its own `what` (masked tokens, tagged words) that makes the average
    over a step's slices, which accumulation and DDP take, the mean over the whole step's: n_slice / N_step x
    slices, where slices = the step's sequences / the slice's. counts and step_counts hold `what` and
    "sequences" for the slice and for the whole step's batch; 1.0 for the whole batch (docs/training.md)."""
    slices = step_counts["sequences"] / counts["sequences"]
    return counts[what] * slices / step_counts[what]


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # also seeds every CUDA device


class Trainer:
    def __init__(self, model, task: Task, cfg: TrainConfig, checkpoint_config: dict, write_extra=None):
        """checkpoint_config goes into every checkpoint's config.json (model class and config, ...);
        write_extra(folder) adds files to each checkpoint (e.g. the tokenizer)."""
        self.cfg, self.task = cfg, task
        self.dist, self.device = init_distributed(resolve_device(cfg.device))
        self.device_type = self.device.split(":")[0]
        if self.device_type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls: fp32 range, ~10-bit mantissa
            torch.backends.cudnn.allow_tf32 = True
        self.model = model.to(self.device)
        self.sharded = cfg.fsdp
        if self.sharded and type(self).checkpoint_weights is not Trainer.checkpoint_weights:
            raise ConfigError("--fsdp saves whole models, and this run saves only part of one (fine-tuning); "
                              "fine-tune without --fsdp (DDP)")
        if self.sharded and not self.dist.enabled:
            raise ConfigError("--fsdp shards the model across processes, and this is one process; start it with "
                              "torchrun --nproc_per_node N (docs/scaling.md), or drop --fsdp")
        self.tied = tied_names(self.model)  # read before sharding, which gives every parameter its own storage
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=cfg.dtype == "float16")
        self.autocast = torch.autocast(self.device_type, dtype=DTYPES[cfg.dtype], enabled=cfg.dtype != "float32")
        # Every process draws the same global batch and takes its own slice (see train_step), so the
        # data generator is seeded alike everywhere; its state is the data position in a checkpoint.
        self.data_generator = torch.Generator().manual_seed(cfg.seed)
        self.out_dir = Path(cfg.out_dir)
        self.lock = None  # the main process holds out_dir's lock for the life of the run
        if self.dist.is_main:
            self.lock, removed = claim_out_dir(self.out_dir, cfg.resume, cfg.overwrite)
            if removed:
                print(f"overwrite: removed {', '.join(removed)} from {self.out_dir}")
        self.metrics = MetricsLog(self.out_dir / "metrics.jsonl")
        self.checkpoint_config = {**checkpoint_config, "train": asdict(cfg)}
        self.write_extra = write_extra
        self.step, self.best, self.evals_without_improvement, self.skipped_steps = 0, None, 0, 0
        self.saved_step = None  # the step out_dir/ckpt holds, once this run has saved (or resumed) it
        # A resumed run loads the full weights into the whole model, then shards it (with --fsdp),
        # then builds the optimizer over the (sharded) parameters and loads its state. The checkpoint is
        # ckpt/, or ckpt.old/ if a crash came between the two renames of a save (checkpoint_to_resume).
        self.resumed_from = checkpoint_to_resume(self.out_dir) if cfg.resume else None
        saved = load_checkpoint(self.resumed_from) if cfg.resume else None
        if saved is not None:
            self.load_weights(saved[0])
        if self.sharded:
            fsdp.shard_model(self.model)
        self.optimizer = make_optimizer(self.model, cfg, self.device)
        if saved is not None:
            self._restore(saved[2])
        self.train_model = self._wrap(self.model)

    def _wrap(self, model):
        if self.cfg.compile:
            model = torch.compile(model)
        if self.dist.enabled and not self.sharded:
            ids = [self.dist.local_rank] if self.device_type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return model

    def train_step(self) -> float:
        """One optimizer step over batch_size x grad_accum_steps x world_size sequences. Returns the loss."""
        cfg, model = self.cfg, self.train_model
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, cfg)
        # Draw the whole step's batch, keep this process's share, cut it into micro-batches. So
        # N processes (or k accumulation steps) see exactly the sequences one big batch would.
        world, accum = self.dist.world_size, cfg.grad_accum_steps
        self.task.on_step_start(self.step)
        batch = self.task.get_batch("train", cfg.batch_size * accum * world, self.data_generator)
        self.tokens_per_step = self.task.count_tokens(batch)
        self.seq_len = next(iter(batch.values())).shape[-1]  # T, for the FLOPs of attention
        micro_batches = split_batch(split_batch(batch, world)[self.dist.rank], accum)
        total = torch.zeros((), device=self.device)
        for i, micro in enumerate(micro_batches):
            last = i == accum - 1
            # DDP (and FSDP) average gradients across processes in backward; do it once, on the last micro-batch.
            if self.sharded:
                fsdp.set_gradient_sync(self.model, last)
            sync = model.no_sync() if self.dist.enabled and not self.sharded and not last else contextlib.nullcontext()
            with sync:
                with self.autocast:
                    loss = self.task.loss(model, to_device(micro, self.device))
                self.scaler.scale(loss / accum).backward()  # mean over micro-batches
            total += loss.detach()
        if self.dist.enabled:  # the whole step's loss, so every process logs it and stops on NaN alike
            torch.distributed.all_reduce(total)
            total /= world
        loss_value = total.item() / accum
        self._check_finite(loss_value)
        self.scaler.unscale_(self.optimizer)  # from here on the gradients are the true ones
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.task.on_gradients(self.model, self.step)
        scale_before = self.scaler.get_scale()
        self.scaler.step(self.optimizer)  # skipped by the scaler if float16 gradients overflowed
        self.scaler.update()
        if self.scaler.is_enabled() and self.scaler.get_scale() < scale_before:
            self.skipped_steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        return loss_value

    def _check_finite(self, loss_value: float) -> None:
        if math.isfinite(loss_value) or self.scaler.is_enabled():
            return  # with float16 the scaler sees the overflow and skips the step; it is counted
        self.optimizer.zero_grad(set_to_none=True)
        raise TrainingDiverged(f"loss is {loss_value} at step {self.step + 1}; training stopped before applying "
                               f"it. {self._way_out()}")

    def _way_out(self) -> str:
        last = self.out_dir / "ckpt"
        kept = f"The last good checkpoint, {last}, is kept. " if self.saved_step is not None else ""
        return (kept + "Try a lower --lr, a longer --warmup_iters, --grad_clip 1.0, or --dtype bfloat16/float32; "
                "continue with --resume, or start afresh with --overwrite.")

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        with self.autocast:
            metrics = self.task.evaluate(self.model, self.cfg, self.device)
        self.model.train()
        return metrics

    def run(self) -> dict:
        """Train to max_iters (or early stop); returns the last evaluation's metrics."""
        # disable=None: a bar on a terminal, none in a log file; only the main process shows one.
        show = None if self.cfg.progress and self.dist.is_main else True
        if self.dist.is_main and peak_flops(self.device, self.cfg.dtype) is None:
            print(f"MFU: peak unknown for {device_name(self.device)} ({self.cfg.dtype}); tokens/s only")
        bar = tqdm(total=self.cfg.max_iters, initial=self.step, disable=show, dynamic_ncols=True, leave=False)
        self.last_metrics, self.stopped = {}, False
        finished = False
        try:
            # Ctrl-C and SIGTERM only ask to stop; the loop stops at a step boundary (minilm/training/stopping.py).
            with StopRequest(second_ctrl_c_leaves=not self.dist.enabled) as self.stop_request:
                self._train_to_the_end(bar)
            finished = True
        except KeyboardInterrupt as interrupt:
            if not self.stopped and self.dist.is_main:  # a second Ctrl-C: left at once, nothing saved
                bar.write(f"left at once during step {self.step + 1} ({interrupt or 'KeyboardInterrupt'}), without "
                          f"saving. {self._last_checkpoint_note()}")
            raise
        finally:
            bar.close()
            if self.dist.is_main and self.metrics.path.exists():
                self._plot_metrics(bar)
            if self.lock is not None:
                self.lock.release()
            shutdown_distributed(together=finished or self.stopped)
        return self.last_metrics

    def _train_to_the_end(self, bar) -> None:
        """The loop itself: steps, log lines, evaluations and checkpoints, to max_iters or an early stop."""
        cfg = self.cfg
        interval_start, interval_steps = time.perf_counter(), 0
        while self.step < cfg.max_iters:
            loss = self.train_step()
            self.step += 1
            interval_steps += 1
            bar.update(1)
            if self.step % cfg.log_interval == 0 or self.step == cfg.max_iters:
                elapsed = time.perf_counter() - interval_start
                self._log_train(loss, elapsed / interval_steps, bar)
                interval_start, interval_steps = time.perf_counter(), 0
            if self.step % cfg.eval_interval == 0 or self.step == cfg.max_iters:
                self.last_metrics = self._evaluate_and_checkpoint(bar)
                if cfg.patience and self.evals_without_improvement >= cfg.patience:
                    bar.write(f"early stop at step {self.step}: no better {cfg.metric} in {cfg.patience} evaluations")
                    return
                interval_start = time.perf_counter()
            # A step boundary: the step is whole (weights, optimizer, RNGs, data position) and may be saved.
            # (After the last step the run has finished and saved: there is nothing left to stop.)
            signum = self.stop_request.agreed(self.dist, self.device) if self.step < cfg.max_iters else 0
            if signum:
                self._save_and_stop(signum, bar)

    def _save_and_stop(self, signum: int, bar) -> None:
        """A signal asked the run to stop: save this step (unless the evaluation just did), then leave."""
        if self.saved_step != self.step:
            self.save(self.out_dir / "ckpt")  # under FSDP every process takes part; they all stop here
            self.saved_step = self.step
        if self.dist.enabled:
            torch.distributed.barrier()  # leave together: none ends while another still saves
        self.stopped = True
        if self.dist.is_main:
            what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted (Ctrl-C)"
            bar.write(f"{what} at step {self.step}: saved {self.out_dir / 'ckpt'}; continue with --resume")
        raise stop_exception(signum)

    def _last_checkpoint_note(self) -> str:
        if self.saved_step is None:
            return "No checkpoint was written."
        folder = self.out_dir / "ckpt" if (self.out_dir / "ckpt").is_dir() else self.resumed_from
        return f"{folder} (step {self.saved_step}) is intact; continue with --resume."

    def _plot_metrics(self, bar) -> None:
        """metrics.png, redrawn at the end of the run; a picture is not worth failing a run for (a full
        disk, a damaged metrics.jsonl): the run ends as it would have, with a warning."""
        png = self.out_dir / "metrics.png"
        try:
            self.metrics.plot(png)
        except (OSError, DataError) as err:
            bar.write(f"warning: {png} was not drawn ({err}); metrics.jsonl holds every number")

    def _log_train(self, loss: float, seconds_per_step: float, bar) -> None:
        row = {"step": self.step, "loss": loss, "lr": learning_rate(self.step - 1, self.cfg),
               "ms_per_step": 1000 * seconds_per_step, "tokens_per_s": self.tokens_per_step / seconds_per_step}
        if self.scaler.is_enabled():
            row["skipped_steps"] = self.skipped_steps
        mfu = self._mfu(row["tokens_per_s"])
        if mfu is not None:
            row["mfu"] = mfu
        if self.dist.is_main:
            self._append_metrics(row)
            bar.write(f"step {self.step:6d} | loss {loss:.4f} | lr {row['lr']:.2e} | "
                      f"{row['ms_per_step']:.1f} ms/step | {row['tokens_per_s']:,.0f} tok/s"
                      + (f" | MFU {mfu:.1%}" if mfu is not None else ""))

    def _mfu(self, tokens_per_s: float) -> float | None:
        """The share of the devices' peak FLOP/s the step achieved (minilm/training/throughput.py); None
        when the peak is unknown (a CPU, a chip not in the table) or the model has no GPT/BERT config."""
        peak = peak_flops(self.device, self.cfg.dtype)
        if peak is None or not hasattr(self.model, "config"):
            return None
        return tokens_per_s * flops_per_token(self.model, self.seq_len) / (peak * self.dist.world_size)

    def _evaluate_and_checkpoint(self, bar) -> dict:
        metrics = self.evaluate()
        if self.cfg.metric not in metrics:
            raise ConfigError(f"--metric {self.cfg.metric} is not computed by this task; "
                              f"choose one of {', '.join(metrics)}")
        diverged = [f"{name} {v}" for name, v in metrics.items() if not math.isfinite(v)]
        if diverged:  # stop before this state can become ckpt/ or best/
            if self.dist.is_main:
                self._append_metrics({"step": self.step, **metrics})
            raise TrainingDiverged(f"the evaluation at step {self.step} gave {', '.join(diverged)}; nothing was "
                                   f"saved from this state. {self._way_out()}")
        value = metrics[self.cfg.metric]
        improved = self.best is None or (value < self.best if self.cfg.metric_goal == "min" else value > self.best)
        if improved:
            self.best, self.evals_without_improvement = value, 0
        else:
            self.evals_without_improvement += 1
        if self.dist.is_main:
            self._append_metrics({"step": self.step, **metrics})
            shown = " | ".join(f"{name} {v:.4f}" for name, v in metrics.items())
            bar.write(f"eval {self.step:6d} | {shown}" + (" | best" if improved else ""))
        if improved:  # under FSDP every process takes part in gathering the weights; rank 0 writes
            self.save(self.out_dir / "best", with_train_state=False)
        self.save(self.out_dir / "ckpt")
        self.saved_step = self.step  # on every process: they must agree whether _save_and_stop saves
        return metrics

    def save(self, folder, with_train_state: bool = True) -> Path | None:
        """Write a checkpoint folder atomically; never from weights that are NaN or infinite.

        Every process calls it; the main process writes (under FSDP the others send their shards first).
        """
        if not (self.dist.is_main or self.sharded):
            return None
        if self.sharded:
            bad = "a parameter" if fsdp.any_nonfinite(self.model) else None
        else:
            bad = next((name for name, p in self.model.named_parameters() if not torch.isfinite(p).all()), None)
        if bad is not None:
            raise TrainingDiverged(f"{bad} holds NaN or infinite values at step {self.step}; {folder} was not "
                                   f"written. {self._way_out()}")
        if self.sharded:  # every process sends its shards; rank 0 keeps the whole weights
            weights = fsdp.Gathered(fsdp.gather_model_state(self.model, self.tied))
        else:
            weights = self.checkpoint_weights()
        state = self._train_state() if with_train_state else None
        if not self.dist.is_main:
            return None
        config = {**self.checkpoint_config, "step": self.step}
        with disk_full_is_an_error(f"writing {folder}", "the previous checkpoint there is intact and no partial "
                                   "folder is left. Free some space, then continue with --resume"):
            return save_checkpoint(folder, weights, config, state, self.write_extra)

    def _append_metrics(self, row: dict) -> None:
        with disk_full_is_an_error(f"appending to {self.metrics.path}",
                                   f"{self._last_checkpoint_note()} (Free some space first.)"):
            self.metrics.append(row)

    def checkpoint_weights(self) -> torch.nn.Module:
        """The module whose weights a checkpoint stores (finetune.py's trainer stores only the trained part)."""
        return self.model

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Put a checkpoint's weights back into the model (the inverse of checkpoint_weights)."""
        load_model_weights(self.model, state_dict)

    def _train_state(self) -> dict:
        return {
            "step": self.step,
            "optimizer": (fsdp.gather_optimizer_state(self.model, self.optimizer) if self.sharded
                          else self.optimizer.state_dict()),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "data_generator": self.data_generator.get_state(),
            "best": self.best,
            "evals_without_improvement": self.evals_without_improvement,
            "skipped_steps": self.skipped_steps,
        }

    def _restore(self, state: dict) -> None:
        """Everything but the weights: optimizer, scaler, RNGs, data position, step, early-stopping count."""
        if self.sharded:
            fsdp.load_optimizer_state(self.model, self.optimizer, state["optimizer"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.data_generator.set_state(state["data_generator"])
        self.step, self.best = state["step"], state["best"]
        self.saved_step = self.step
        if self.cfg.max_iters <= self.step:
            raise ConfigError(f"--resume: {self.resumed_from} is at step {self.step} already, so --max_iters "
                              f"{self.cfg.max_iters} leaves nothing to do; pass a larger --max_iters "
                              f"(e.g. --max_iters {self.step + max(self.cfg.eval_interval, 1)})")
        self.evals_without_improvement = state["evals_without_improvement"]
        self.skipped_steps = state["skipped_steps"]
        if self.dist.is_main:
            self.metrics.truncate_after(self.step)
        print(f"resumed from {self.resumed_from} at step {self.step}")
