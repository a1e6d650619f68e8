"""The service behind the routes: which model answers, the limits that need no tokenizer, and the wait for a
worker (docs/serving.md). Everything here runs on the event loop and returns quickly; the work is queued.

    pick(name, endpoint)     the named model, or the first that serves the endpoint      404 / 400
    check_limits(request)    texts per request, characters per text, max_new_tokens cap  422
    answer(...)              queue the job, wait for it                                  503 / 504
    begin_shutdown()         SIGTERM: no new work; at the deadline what waits is refused  503
                             (two lanes, each its own queue and workers: generation apart from the rest)
    stream(...)              queue a generation, yield its server-sent events
    events(...)              queue a generation or a chat, yield its (kind, data) events (chat_routes.py)
"""

import asyncio
import json
import time
from dataclasses import dataclass

from .chat_job import run_chat
from .config import ServeConfig
from .inference import run_encoder_jobs, run_generation
from .limits import RequestError, check_max_new_tokens, check_text_chars, check_text_count
from .metrics import Metrics
from .models import ServedModel
from .scheduler import Job, QueueFull, Scheduler, ShuttingDown

RETRY_AFTER_SECONDS = "1"
GENERATING = ("generate", "chat")  # the endpoints that run token by token, one request at a time, in their lane
ANSWERING_SHARE = 0.1  # the last tenth of --shutdown_timeout is kept for sending the last answers


@dataclass
class Service:
    models: dict[str, ServedModel]
    config: ServeConfig
    metrics: Metrics
    retriever: object = None  # for chat: retrieve(messages) -> (messages, sources), see chat_job.py; None: no RAG

    def __post_init__(self):
        if any(name != served.name for name, served in self.models.items()):
            raise ValueError("models must be keyed by their own names")
        # Two lanes, each with its own queue and workers: a long generation never holds up a classify request.
        cfg = self.config
        self.lanes = {"encode": Scheduler(self._run, cfg.workers, cfg.max_queue, cfg.max_batch, self._depth_changed),
                      "generate": Scheduler(self._run, cfg.workers, cfg.max_queue, 1, self._depth_changed)}
        for served in self.models.values():
            self.metrics.load_seconds.labels(served.name).set(served.load_seconds)
        self.shutdown_deadline = None  # time.monotonic() by which a shutdown ends, once one began

    def start(self) -> None:
        for lane in self.lanes.values():
            lane.start()

    def begin_shutdown(self) -> None:
        """SIGTERM (minilm/serve/server.py): take no new work (503) and go on with what is queued. When 9/10 of
        --shutdown_timeout have passed, what still waits is answered 503 and each running generation ends with
        the text it has (finish_reason "shutdown"), so every client gets an answer before the server exits."""
        if self.shutdown_deadline is not None:
            return
        timeout = self.config.shutdown_timeout
        self.shutdown_deadline = time.monotonic() + timeout
        for lane in self.lanes.values():
            lane.close()
        asyncio.get_running_loop().call_later((1 - ANSWERING_SHARE) * timeout, self.expire)

    def expire(self) -> None:
        for lane in self.lanes.values():
            lane.expire(self._shutting_down())

    def stop(self) -> None:
        """The app's end, after the server has waited for its connections: no new work, the workers given what is
        left of --shutdown_timeout to end, and anything still queued refused."""
        if self.shutdown_deadline is None:  # no SIGTERM came first (e.g. a test client closing)
            self.shutdown_deadline = time.monotonic() + self.config.shutdown_timeout
            for lane in self.lanes.values():
                lane.close()
        for lane in self.lanes.values():
            lane.join(max(0.0, self.shutdown_deadline - time.monotonic()))
        self.expire()

    @property
    def depth(self) -> int:
        return sum(lane.depth for lane in self.lanes.values())

    def _depth_changed(self, _depth_of_one_lane: int) -> None:
        self.metrics.queue_depth.set(self.depth)

    # ---- on the event loop ------------------------------------------------------------------------
    def pick(self, name: str | None, endpoint: str) -> ServedModel:
        loaded = "; ".join(f"{m.name} ({', '.join(m.endpoints)})" for m in self.models.values())
        if name is None:
            served = next((m for m in self.models.values() if endpoint in m.endpoints), None)
            if served is None:
                raise RequestError(400, "model", f"no loaded model serves {endpoint}; loaded: {loaded}")
            return served
        if name not in self.models:
            raise RequestError(404, "model", f"model: no model named {name!r} is loaded; loaded: {loaded}")
        served = self.models[name]
        if endpoint not in served.endpoints:
            why = " (it has no chat template: serve a chat model, e.g. --ckpt smollm2)" if endpoint == "chat" else ""
            raise RequestError(400, "model", f"model: {name!r} is a {type(served.model).__name__} and cannot "
                               f"{endpoint}{why}; it serves {', '.join(served.endpoints) or 'nothing'}")
        return served

    def check_limits(self, endpoint: str, request) -> int:
        """The cheap checks, before queueing; returns the number of texts in the request."""
        cfg = self.config
        if endpoint == "chat":
            for i, message in enumerate(request.messages):
                check_text_chars(message.content, cfg.max_text_chars, f"messages[{i}].content")
            return 1
        if endpoint in ("classify", "embed"):
            check_text_count(len(request.texts), cfg.max_texts)
            for i, text in enumerate(request.texts):
                for part in (text if isinstance(text, list) else [text]):
                    check_text_chars(part, cfg.max_text_chars, f"texts[{i}]")
            return len(request.texts)
        field = "prompt" if endpoint == "generate" else "text"
        check_text_chars(getattr(request, field), cfg.max_text_chars, field)
        if endpoint == "generate" and "max_new_tokens" not in request.model_fields_set:
            request.max_new_tokens = min(request.max_new_tokens, cfg.max_new_tokens)  # the default, held to the cap
        elif endpoint == "generate":
            check_max_new_tokens(request.max_new_tokens, cfg.max_new_tokens)
        return 1

    def _job(self, endpoint: str, request, on_event=None) -> Job:
        served = self.pick(request.model, endpoint)
        size = self.check_limits(endpoint, request)
        loop = asyncio.get_running_loop()
        job = Job((served.name, endpoint), size, request, time.monotonic() + self.config.request_timeout, loop,
                  None if on_event else loop.create_future(), endpoint not in GENERATING, on_event)
        try:
            self.lanes["generate" if endpoint in GENERATING else "encode"].submit(job)
        except QueueFull:
            raise RequestError(503, None, f"the server is busy: all {self.config.max_queue} places in its queue are "
                               "taken (--max_queue); retry shortly", {"Retry-After": RETRY_AFTER_SECONDS}) from None
        except ShuttingDown:
            raise self._shutting_down() from None
        return job

    async def answer(self, endpoint: str, request) -> dict:
        job = self._job(endpoint, request)
        try:
            return await asyncio.wait_for(job.future, self.config.request_timeout)
        except TimeoutError:
            job.cancelled = True
            raise self._timed_out() from None

    async def stream(self, request):
        """Queue a generation; return its server-sent events as an async iterator of bytes. A request the
        worker refuses (e.g. a prompt too long) raises here, before any byte is sent, so it keeps its 4xx."""
        return self._sse(await self.events("generate", request))

    async def _sse(self, events):
        try:
            async for kind, data in events:
                if kind == "error":  # after the first token: the status is sent already, so say it here
                    data = data.body()
                yield f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
        finally:
            await events.aclose()  # now, not when collected: the worker stops at its next token

    async def events(self, endpoint: str, request):
        """Queue a generation or a chat; return an async iterator of its (kind, data) events, ending with "done"
        or "error" (a RequestError). The first event is awaited here: a refusal raises before anything is sent."""
        events = asyncio.Queue()
        job = self._job(endpoint, request, on_event=lambda kind, data: events.put_nowait((kind, data)))
        try:
            first = await asyncio.wait_for(events.get(), self.config.request_timeout)
        except TimeoutError:
            job.cancelled = True
            raise self._timed_out() from None
        if first[0] == "error":
            raise first[1]
        return self._follow(job, events, first)

    async def _follow(self, job: Job, events: asyncio.Queue, event):
        try:
            while True:
                kind, data = event
                if kind == "error" and not isinstance(data, RequestError):
                    data = RequestError(500, None, f"failed: {data}")
                yield kind, data
                if kind in ("done", "error"):
                    return
                event = await events.get()
        finally:
            job.cancelled = True  # the client left (or the stream ended): the worker stops sampling

    def _shutting_down(self) -> RequestError:
        return RequestError(503, None, "the server is shutting down; retry on another replica",
                            {"Retry-After": RETRY_AFTER_SECONDS})

    def _timed_out(self) -> RequestError:
        return RequestError(504, None, f"the request took longer than {self.config.request_timeout:g} s "
                            "(--request_timeout); the server is overloaded, or ask for less")

    # ---- in a worker thread -----------------------------------------------------------------------
    def _run(self, jobs: list[Job]) -> None:
        name, endpoint = jobs[0].key
        served = self.models[name]
        if endpoint == "generate":
            for job in jobs:
                run_generation(served, job, self.config.truncate, self.metrics.tokens.labels(name).inc)
            return
        if endpoint == "chat":
            for job in jobs:
                run_chat(served, job, self.config.max_new_tokens, self.config.truncate,
                         self.metrics.tokens.labels(name).inc, self.retriever)
            return
        self.metrics.batch_texts.observe(sum(job.size for job in jobs))
        run_encoder_jobs(served, endpoint, jobs, self.config.truncate)
