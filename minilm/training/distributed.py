"""Where training runs: device selection and, under `torchrun`, the process group for DDP."""

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from common.errors import ConfigError


@dataclass(frozen=True)
class Distributed:
    rank: int = 0  # this process among all of them
    local_rank: int = 0  # this process on this machine: picks the GPU
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, metrics and logs."""
        return self.rank == 0


def resolve_device(name: str) -> str:
    """"auto" picks cuda, then mps, then cpu; anything else is checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps: MPS is not available on this machine; use --device cpu or auto")
    return name


def init_distributed(device: str) -> tuple[Distributed, str]:
    """Join the process group if started by torchrun (it sets RANK, LOCAL_RANK, WORLD_SIZE).

    Returns the process's place and its device: with CUDA, each process drives the GPU of its local rank.
    """
    if "RANK" not in os.environ:
        return Distributed(), device
    info = Distributed(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        device = f"cuda:{info.local_rank}"
        torch.cuda.set_device(device)
    return info, device


def shutdown_distributed(together: bool = True) -> None:
    """Leave the process group at the end of a run.

    together: every process ended the run at the same point (it finished, or stopped at the step all of them
    agreed on), so they first wait for one another (a barrier). Without it, the process that finishes first
    (rank 1, which writes nothing) exits a few milliseconds after its last collective, while a gloo worker
    thread may still be letting go of that collective's tensors; a tensor freed there after Python began
    shutting down needs the interpreter lock, and the thread is killed inside C++ ("terminate called without
    an active exception", exit status -6: what tests/test_fsdp.py met on a loaded machine). The barrier puts
    the others' saving and plotting between the last collective that carries tensors and the exit. (The
    group itself lives on until the process ends: FSDP's DTensors keep it, and destroying it does not stop
    gloo's threads.) After an error in one process the others may never get here, so then no barrier.
    """
    if not dist.is_initialized():
        return
    if together:
        dist.barrier()
    dist.destroy_process_group()


@contextlib.contextmanager
def main_process_first(info: Distributed):
    """Run the block on the main process first, then on the others: e.g. preparing cached data files,
    which the others then find ready instead of racing to write them."""
    if info.enabled and not info.is_main:
        dist.barrier()
    yield
    if info.enabled and info.is_main:
        dist.barrier()
