"""How a run stops without losing anything: SIGTERM saves like Ctrl-C, and a diverged run stops before
anything is saved from its state (the checks themselves are in Trainer: _check_finite, save, and
_evaluate_and_checkpoint; docs/training.md, "What a run never does")."""

import contextlib
import signal
import threading

from common.errors import Terminated, UserError


class TrainingDiverged(UserError, FloatingPointError):
    """The loss, an evaluation or the weights became NaN or infinite; nothing is saved from that state."""


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While training, SIGTERM (docker stop, a cluster preempting the job) raises Terminated, a kind of
    KeyboardInterrupt, so the run saves its checkpoint exactly as it does on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
