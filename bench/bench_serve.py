"""python -m minilm.serve under load: N concurrent clients on 127.0.0.1, each sending its requests one after
another on a keep-alive connection, against real servers (subprocesses, as a user runs them).

    classify, 1 client             latency of one sentence (goal on 2 cores: p50 <= 30 ms)
    classify, --clients clients    throughput and latency of each concurrency design: one at a time (1 worker,
                                   no batching), a thread pool (2 workers), micro-batching (1 worker, batches
                                   of up to 32) with 1 and with 2 torch threads. All four servers are up at
                                   once and take turns, --rounds times, so a change in what else the machine
                                   runs falls on all of them alike; the ratio to one at a time is the median
                                   over the rounds. Errors must be 0 (the load stays below --max_queue)
    overload                       micro-batching with --max_queue 8 and 4x the clients: the 503s, and how
                                   fast they come back
    generate, streamed             --streams requests of 64 tokens from a GPT, 4 clients: tokens/s and the
                                   time to the first event
After each run the server's /metrics must agree with what the clients counted (requests by status, tokens).

    python -m bench.bench_serve --ckpt /tmp/shared/sentiment-minilm                  # about 4 minutes on 2 cores
    python -m bench.bench_serve --ckpt out/sentiment-minilm --gpt out/gpt-small --json serve.json

Without --gpt, the streamed run uses a GPT of train_gpt.py's `small` shape with random weights (speed does
not depend on what the weights learned). Client and server share the machine's cores, as they do in practice
on one box; say what else was running when you quote the figures.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SENTENCES = [
    "a gorgeous, moving film that never lets go",
    "the plot is thin and the jokes fall flat",
    "one of the most honest films about growing up i have seen",
    "a tedious, overlong exercise in style over substance",
    "the actors do what they can with a script that gives them nothing",
    "funny, warm and surprisingly wise",
    "it looks great, but there is no story to speak of",
    "an unforgettable performance at the centre of a quiet, careful drama",
]
PAUSE_S = 1.0  # between runs, so the threads of the last server are asleep before the next one starts
MODES = {  # name -> server flags; the designs docs/serving.md compares
    "one at a time": ["--workers", "1", "--max_batch", "1", "--threads", "2"],
    "thread pool (2 workers x 1 thread)": ["--workers", "2", "--max_batch", "1", "--threads", "1"],
    "micro-batching, 1 thread": ["--workers", "1", "--max_batch", "32", "--threads", "1"],
    "micro-batching, 2 threads": ["--workers", "1", "--max_batch", "32", "--threads", "2"],
}


# ------------------------------------------------------------------------------------------ the server

class Server:
    def __init__(self, ckpts: list[str], flags: list[str]):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        args = [sys.executable, "-m", "minilm.serve", "--port", str(self.port)]
        for ckpt in ckpts:
            args += ["--ckpt", ckpt]
        self.log = tempfile.TemporaryFile("w+")  # a pipe nobody reads would fill up and stall the server
        self.process = subprocess.Popen(args + flags, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        self._wait_until_up()

    def _wait_until_up(self, seconds: float = 180) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"the server exited:\n{self.log.read()}")
            try:
                if get(self.port, "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the server did not start")

    def metrics(self) -> dict[str, float]:
        samples = {}
        for line in get(self.port, "/metrics")[1].splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read().decode()


# ------------------------------------------------------------------------------------------ the clients

def run_clients(port: int, n_clients: int, n_requests: int, make_body, stream: bool = False) -> dict:
    """n_requests spread over n_clients threads, each on its own keep-alive connection. Returns the latencies
    (s) of the 200s and of the refusals, the count per status, the time to the first event (streams), the
    tokens the done events report, and the wall time."""
    latencies, refused, first_event, statuses, tokens = [], [], [], {}, [0]
    lock, counter = threading.Lock(), iter(range(n_requests))

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body = json.dumps(make_body(i))
            start = time.perf_counter()
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            first, done = None, None
            if stream and response.status == 200:
                text = b""
                while chunk := response.read1(65536):  # the events as they arrive
                    first = first or time.perf_counter() - start
                    text += chunk
                done = json.loads(text.decode().split("event: done\ndata: ")[1].split("\n")[0])
            else:
                response.read()
            elapsed = time.perf_counter() - start
            with lock:
                statuses[response.status] = statuses.get(response.status, 0) + 1
                (latencies if response.status == 200 else refused).append(elapsed)
                if first is not None:
                    first_event.append(first)
                    tokens[0] += done["tokens"]

    path = "/v1/generate" if stream else "/v1/classify"
    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"wall_s": time.perf_counter() - start, "latencies": latencies, "refused": refused,
            "first_event": first_event, "statuses": statuses, "tokens": tokens[0]}


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50_ms": values[0] * 1e3 if values else float("nan")}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": cuts[49] * 1e3, "p95_ms": cuts[94] * 1e3, "p99_ms": cuts[98] * 1e3}


def classify_body(i: int) -> dict:
    return {"texts": [SENTENCES[i % len(SENTENCES)]]}


def counted(metrics_before: dict, metrics_after: dict, endpoint: str) -> dict[int, int]:
    """Requests the server counted per status between two scrapes of /metrics."""
    prefix = f'minilm_requests_total{{endpoint="{endpoint}",status="'
    result = {}
    for name, value in metrics_after.items():
        if name.startswith(prefix):
            delta = int(value - metrics_before.get(name, 0.0))
            if delta:
                result[int(name[len(prefix):-2])] = delta
    return result


def measured_run(server: Server, n_clients: int, n_requests: int, make_body, stream: bool = False) -> dict:
    endpoint = "/v1/generate" if stream else "/v1/classify"
    before = server.metrics()
    run = run_clients(server.port, n_clients, n_requests, make_body, stream)
    after = server.metrics()
    server_counts = counted(before, after, endpoint)
    report = {"clients": n_clients, "requests": n_requests, "wall_s": run["wall_s"], "latencies": run["latencies"],
              "refused": run["refused"], "statuses": run["statuses"], "metrics_statuses": server_counts,
              "metrics_agree": server_counts == run["statuses"]}
    if stream:
        key = 'minilm_generated_tokens_total{model="gpt"}'
        server_tokens = int(after.get(key, 0) - before.get(key, 0))
        report.update(tokens=run["tokens"], tokens_per_s=run["tokens"] / run["wall_s"],
                      first_event_p50_ms=statistics.median(run["first_event"]) * 1e3,
                      metrics_tokens=server_tokens, metrics_agree=report["metrics_agree"] and
                      server_tokens == run["tokens"])
    return summary([report]) | {k: v for k, v in report.items() if k.startswith(("tokens", "first", "metrics_t"))}


def summary(reports: list[dict]) -> dict:
    """Several runs of one design pooled: throughput over the summed wall time, percentiles of all latencies,
    statuses summed (and as /metrics counted them)."""
    statuses, counted_by_server = {}, {}
    for report in reports:
        for status, n in report["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
        for status, n in report["metrics_statuses"].items():
            counted_by_server[status] = counted_by_server.get(status, 0) + n
    result = {"clients": reports[0]["clients"], "requests": sum(r["requests"] for r in reports),
              "throughput_rps": sum(r["requests"] for r in reports) / sum(r["wall_s"] for r in reports),
              **percentiles([x for r in reports for x in r["latencies"]]), "statuses": statuses,
              "metrics_statuses": counted_by_server, "metrics_agree": all(r["metrics_agree"] for r in reports),
              "wall_s": sum(r["wall_s"] for r in reports), "latencies": [x for r in reports for x in r["latencies"]],
              "refused": [x for r in reports for x in r["refused"]]}
    if result["refused"]:  # how fast a refusal comes back: at once, not after a wait in the queue
        result["refused_p50_ms"] = statistics.median(result["refused"]) * 1e3
    return result


# ------------------------------------------------------------------------------------------ the runs

def random_gpt(folder: Path) -> str:
    """A GPT of train_gpt.py's `small` shape (random weights) with a character tokenizer, as a checkpoint."""
    import torch

    from minilm import GPT, GPTConfig
    from minilm.training.checkpoint import save_checkpoint
    from tokenizer import CharTokenizer

    tokenizer = CharTokenizer.train(" ".join(SENTENCES) + ".\n")
    torch.manual_seed(0)
    model = GPT(GPTConfig.preset("small", vocab_size=tokenizer.vocab_size))
    config = {"model_class": "GPT", "model": model.config.to_dict()}
    save_checkpoint(folder, model, config, None, lambda tmp: tokenizer.save(tmp / "tokenizer"))
    return str(folder)


def print_row(name: str, report: dict) -> None:
    p = {k: f"{report.get(k, float('nan')):.1f}" for k in ("p50_ms", "p95_ms", "p99_ms")}
    print(f"{name:40s} {report['clients']:>3} clients  {report['throughput_rps']:7.1f} req/s  p50 {p['p50_ms']:>6} "
          f"p95 {p['p95_ms']:>6} p99 {p['p99_ms']:>6} ms  statuses {report['statuses']}  "
          f"/metrics agrees: {report['metrics_agree']}", flush=True)


def bench_designs(args) -> dict:
    """Every design's server is up at once and they take turns (A B C D, B C D A, ...): a change in what else
    the machine runs falls on all of them alike, and each round gives a ratio to one at a time."""
    servers = {name: Server([args.ckpt], flags) for name, flags in MODES.items()}
    runs = {name: {"one": [], "many": []} for name in MODES}
    try:
        for server in servers.values():
            measured_run(server, 1, 10, classify_body)  # warm-up
        names = list(MODES)
        for round_ in range(args.rounds):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:  # each round starts elsewhere
                time.sleep(PAUSE_S)
                runs[name]["one"].append(measured_run(servers[name], 1, args.single_requests // args.rounds,
                                                      classify_body))
                runs[name]["many"].append(measured_run(servers[name], args.clients, args.requests // args.rounds,
                                                       classify_body))
    finally:
        for server in servers.values():
            server.stop()
    results = {}
    for name in MODES:
        one, many = summary(runs[name]["one"]), summary(runs[name]["many"])
        ratios = [r["throughput_rps"] / base["throughput_rps"] for r, base in
                  zip(runs[name]["many"], runs["one at a time"]["many"])]
        many["ratio_to_one_at_a_time"] = statistics.median(ratios)  # the median over the rounds
        many["round_rps"] = [round(r["throughput_rps"], 1) for r in runs[name]["many"]]
        print_row(name, one)
        print_row(name, many)
        results[name] = {"one_client": one, "many_clients": many}
    return results


def bench_overload(args) -> dict:
    server = Server([args.ckpt], MODES["micro-batching, 2 threads"] + ["--max_queue", "8"])
    try:
        report = measured_run(server, args.clients * 4, args.requests, classify_body)
    finally:
        server.stop()
    print_row("overload: micro-batching, --max_queue 8", report)
    print(f"{'':40s} the refusals came back in {report.get('refused_p50_ms', float('nan')):.1f} ms (p50)", flush=True)
    return report


def bench_streams(args, gpt: str) -> dict:
    server = Server([f"gpt={gpt}"], ["--threads", "2"])
    body = lambda i: {"prompt": SENTENCES[i % len(SENTENCES)][:20], "max_new_tokens": 64, "stream": True,
                      "seed": i}
    try:
        report = measured_run(server, 4, args.streams, body, stream=True)
    finally:
        server.stop()
    print(f"{'generate, streamed, 64 tokens each':40s}   4 clients  {report['tokens_per_s']:7.1f} tokens/s  first "
          f"event p50 {report['first_event_p50_ms']:.1f} ms  statuses {report['statuses']}  /metrics agrees: "
          f"{report['metrics_agree']}", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="a classifier: finetune.py's output, e.g. the sentiment MiniLM")
    parser.add_argument("--gpt", help="a GPT checkpoint for the streamed run (default: a random `small` GPT)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--single_requests", type=int, default=100, help="requests of the one-client run")
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="turns the designs take, the requests split among them")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    results = {"designs": bench_designs(args), "overload": bench_overload(args)}
    with tempfile.TemporaryDirectory() as tmp:
        results["streams"] = bench_streams(args, args.gpt or random_gpt(Path(tmp) / "gpt"))
    designs = results["designs"]
    best = max(designs, key=lambda name: designs[name]["many_clients"]["ratio_to_one_at_a_time"])
    ratio = designs[best]["many_clients"]["ratio_to_one_at_a_time"]
    print(f"fastest at {args.clients} clients: {best}, {ratio:.2f}x the throughput of one at a time (median of "
          f"{args.rounds} rounds)", flush=True)
    results["fastest"], results["ratio_to_one_at_a_time"] = best, ratio
    if args.json:
        Path(args.json).write_text(json.dumps(without_samples(results), indent=2))


def without_samples(value):
    """The results without the raw latencies, for the JSON file."""
    if isinstance(value, dict):
        return {k: without_samples(v) for k, v in value.items() if k not in ("latencies", "refused")}
    return value


if __name__ == "__main__":
    main()
