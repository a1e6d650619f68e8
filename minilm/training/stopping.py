"""How a run stops without losing anything (docs/training.md, "Checkpoints and exact resume").

Ctrl-C and SIGTERM never cut into a step or a save. Python runs a signal's handler in the main thread
between two bytecodes, which may be half-way through `optimizer.step()` (some parameters updated, the
others not) or through writing a checkpoint; so the handler here raises nothing: it only records the
request (`StopRequest`), and the loop looks at it at the next step boundary, where the state is whole,
saves there and leaves with status 130 (Ctrl-C) or 143 (SIGTERM). Under DDP/FSDP every process joins one
all_reduce of the request at each boundary, so a signal that reached one process stops them all at the
same step and none is left waiting in a collective. A second Ctrl-C leaves at once: nothing more is
saved, and the last checkpoint on disk is whole (saves are atomic, common/atomic.py).

A diverged run stops before anything is saved from its state (the checks are in Trainer: _check_finite,
save and _evaluate_and_checkpoint), and a full disk stops it with a clear error (DiskFull).
"""

import contextlib
import errno
import signal
import threading

import torch

from common.errors import Terminated, UserError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full disk, a full quota


class TrainingDiverged(UserError, FloatingPointError):
    """The loss, an evaluation or the weights became NaN or infinite; nothing is saved from that state."""


class DiskFull(UserError):
    """The disk filled up while the run wrote a checkpoint or its metrics; what was there before is whole."""


class StopRequest:
    """While in its `with` block: SIGINT and SIGTERM ask the loop to stop at the next step boundary.

    second_ctrl_c_leaves: a second Ctrl-C raises KeyboardInterrupt at once. Not under torchrun: on Ctrl-C
    its agent sends SIGINT again to every process (the terminal already did), so a process cannot tell a
    second press from the agent's copy; the agent itself ends processes that take too long to stop.
    """

    def __init__(self, second_ctrl_c_leaves: bool = True):
        self.second_ctrl_c_leaves = second_ctrl_c_leaves
        self.signum = 0  # the first signal received; 0: none
        self.previous = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # handlers can only be set from there
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._ask)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _ask(self, signum, frame) -> None:
        # Nothing but an assignment: anything more (a print) could meet itself half-done in the main thread.
        if self.signum and signum == signal.SIGINT and self.second_ctrl_c_leaves:
            raise KeyboardInterrupt("Ctrl-C twice: left at once")
        self.signum = self.signum or signum

    def agreed(self, dist, device: str) -> int:
        """At a step boundary: the signal to stop for (0: go on), the same in every process. Every process
        must call it at every boundary (it is a collective under DDP/FSDP)."""
        if not dist.enabled:
            return self.signum
        # MAX: a signal seen by any process stops all; SIGTERM (15) outranks SIGINT (2), so all exit alike.
        request = torch.tensor(self.signum, device=device)  # NCCL reduces only tensors on the GPU
        torch.distributed.all_reduce(request, op=torch.distributed.ReduceOp.MAX)
        return int(request.item())


@contextlib.contextmanager
def disk_full_is_an_error(doing: str, state_of_things: str):
    """A full disk (or quota) in the block becomes DiskFull: 'no space left on the device while <doing>
    (<reason>); <state_of_things>', a user's error line instead of a traceback."""
    try:
        yield
    except OSError as err:
        if err.errno not in NO_SPACE:
            raise
        raise DiskFull(f"no space left on the device while {doing} ({err.strerror}); {state_of_things}") from None


def stop_exception(signum: int) -> KeyboardInterrupt:
    """What the loop raises once it has saved: run_command turns it into status 143 or 130."""
    return Terminated("SIGTERM") if signum == signal.SIGTERM else KeyboardInterrupt("Ctrl-C")
