"""What GET /metrics tells Prometheus (its text format), and the middleware that counts every request.

    minilm_requests_total{endpoint, status}     requests answered, by path and HTTP status; status "499" (nginx's
                                                "client closed request") counts clients that left before any answer
    minilm_request_seconds{endpoint}            a latency histogram, to the last byte (a stream: its end)
    minilm_generated_tokens_total{model}        tokens sampled by generate
    minilm_batch_texts                          texts per forward pass (how much micro-batching happens)
    minilm_queue_depth                          requests waiting for a worker, now
    minilm_model_load_seconds{model}            how long each model took to load at start

Each app has its own registry, so two servers in one process (the tests) count apart.
"""

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CLIENT_LEFT = 499  # nginx's "client closed request": the status of a request whose client left before the answer
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("minilm_requests", "Requests answered, by endpoint and HTTP status",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("minilm_request_seconds", "Time from the request to the last byte of the answer",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.tokens = Counter("minilm_generated_tokens", "Tokens sampled by generate", ["model"],
                              registry=self.registry)
        self.batch_texts = Histogram("minilm_batch_texts", "Texts per forward pass", buckets=BATCH_BUCKETS,
                                     registry=self.registry)
        self.queue_depth = Gauge("minilm_queue_depth", "Requests waiting for a worker", registry=self.registry)
        self.load_seconds = Gauge("minilm_model_load_seconds", "Seconds each model took to load", ["model"],
                                  registry=self.registry)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """An ASGI middleware: counts each request by its path (unknown paths as "other", so a scan of random
    URLs cannot grow the label set) and status, and times it until its last byte is sent."""

    def __init__(self, app, metrics: Metrics, paths: set[str]):
        self.app, self.metrics, self.paths = app, metrics, paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = scope["path"] if scope["path"] in self.paths else "other"
        start, status = time.perf_counter(), None

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except BaseException:
            status = status or 500  # the app failed before it answered: a bug (or a task cancelled at shutdown)
            raise
        finally:
            # An app that returns without answering saw the client leave (e.g. mid-upload): nothing was sent.
            self.metrics.requests.labels(endpoint, str(status or CLIENT_LEFT)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
