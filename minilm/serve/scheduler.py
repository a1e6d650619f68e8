"""The queue between the HTTP handlers and the models: bounded, and drained by worker threads that batch.

    handler (event loop)   submit(job)          the queue is full -> QueueFull, answered 503 at once
    at shutdown            close()              no new work; the queue is still drained
                           expire(error)        the deadline: what waits fails, what runs is told to stop
    worker thread          take()               the oldest job, plus every waiting job for the same model
                                                and endpoint, up to max_batch texts in all
                           run(jobs)            one forward pass for them all; each job's result goes
                                                back to the event loop (call_soon_threadsafe)

The event loop never runs a model, so /health and /metrics answer while a worker computes. No timer
gathers a batch: a lone request starts at once, and under load the requests that arrived during one
forward pass make up the next (so batches grow with the load, and latency at one client is not taxed).
With max_batch 1 and several workers the same class is a plain thread pool (docs/serving.md compares them).
"""

import asyncio
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field


class QueueFull(Exception):
    """Every place in the queue is taken."""


class ShuttingDown(Exception):
    """The server is stopping and takes no new work."""


@dataclass
class Job:
    key: tuple[str, str]  # (model name, endpoint): jobs with one key may share a forward pass
    size: int  # texts in the job (what max_batch counts)
    request: object  # the validated request
    deadline: float  # time.monotonic() after which nobody waits for the answer
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future | None = None  # the answer, when not streaming
    batchable: bool = True  # generation runs alone
    on_event: object = None  # streaming: on_event(kind, data), called in the worker, run in the loop
    cancelled: bool = False  # set by the loop: the client is gone or its time is up; the worker skips or stops
    shutting_down: bool = False  # set at shutdown's deadline: a generation stops and answers what it has

    def finish(self, result) -> None:
        """Hand the answer back to the event loop (called from a worker thread)."""
        if self.on_event is not None:
            self.emit("done", result)
        else:
            self.loop.call_soon_threadsafe(self._settle, result, None)

    def fail(self, error: BaseException) -> None:
        if self.on_event is not None:
            self.emit("error", error)
        else:
            self.loop.call_soon_threadsafe(self._settle, None, error)

    def emit(self, kind: str, data) -> None:
        """A streaming event ("token", "done" or "error"), handed to the event loop."""
        self.loop.call_soon_threadsafe(self.on_event, kind, data)

    def _settle(self, result, error) -> None:
        if self.future.done():  # it timed out already
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)


@dataclass
class Scheduler:
    run: object  # run(jobs): computes every job of one batch and resolves each
    workers: int = 1
    max_queue: int = 64
    max_batch: int = 32
    on_depth: object = None  # on_depth(n): told the number of waiting jobs whenever it changes
    _waiting: deque = field(default_factory=deque, init=False, repr=False)  # the jobs, oldest first
    _ready: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _threads: list = field(default_factory=list, init=False, repr=False)
    _running: list = field(default_factory=list, init=False, repr=False)  # the batches the workers compute now
    stopping: bool = field(default=False, init=False)

    def start(self) -> None:
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"minilm-serve-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, job: Job) -> None:
        with self._ready:
            if self.stopping:
                raise ShuttingDown()
            if len(self._waiting) >= self.max_queue:
                raise QueueFull()
            self._waiting.append(job)
            self._depth_changed()
            self._ready.notify()

    @property
    def depth(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        """Take no new work (submit raises ShuttingDown); the workers go on with what is queued."""
        with self._ready:
            self.stopping = True
            self._ready.notify_all()

    def expire(self, error: BaseException) -> None:
        """Shutdown's time is up: every waiting job fails with error, every running one is told to stop."""
        with self._ready:
            waiting = list(self._waiting)
            self._waiting.clear()
            self._depth_changed()
            for batch in self._running:
                for job in batch:
                    job.shutting_down = True
        for job in waiting:
            job.fail(error)

    def join(self, timeout: float) -> None:
        """Wait for the workers to end (at most timeout s; they are daemon threads, so they never hold up exit)."""
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))

    def _take(self) -> list[Job] | None:
        """The next batch: the oldest job and the waiting jobs that can share its forward pass. None: stop."""
        with self._ready:
            while not self._waiting:
                if self.stopping:
                    return None
                self._ready.wait()
            batch = [self._waiting.popleft()]
            if batch[0].batchable:
                room = self.max_batch - batch[0].size
                for job in list(self._waiting):
                    if job.key == batch[0].key and job.size <= room:
                        self._waiting.remove(job)
                        batch.append(job)
                        room -= job.size
            self._depth_changed()
            return batch

    def _depth_changed(self) -> None:
        if self.on_depth is not None:
            self.on_depth(len(self._waiting))

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            now = time.monotonic()
            live = [job for job in batch if not job.cancelled and job.deadline > now]
            with self._ready:
                self._running.append(live)
            try:
                if live:
                    self.run(live)
            except Exception as err:  # a bug: its traceback goes to the log, and each client gets a 500
                traceback.print_exc()
                for job in live:
                    job.fail(err)
            finally:
                with self._ready:
                    self._running = [running for running in self._running if running is not live]
