"""The server's settings: every flag of `python -m minilm.serve`, with the limits it enforces.

Each limit is answered with its own status and a message that names the field (docs/serving.md):
    max_body_bytes   a request body larger than this               413
    max_texts        texts in one classify / embed request         422
    max_text_chars   characters in one text or prompt              422
    truncate         a text longer than the model's context: refused (422) unless truncate, then cut
    max_new_tokens   the most tokens one generate request may ask  422
    max_queue        requests waiting for a worker; one more       503 at once
    request_timeout  seconds a request may wait and run            504
"""

import math
import os
from dataclasses import dataclass, field

from common.errors import ConfigError

API_KEY_ENV = "MINILM_API_KEY"  # the bearer token, when --api_key is not given (it would show in `ps`)


@dataclass
class ServeConfig:
    ckpt: list[str] = field(metadata={"help": "a model to serve, FOLDER or NAME=FOLDER: a train_gpt.py / "
                                      "train_bert.py checkpoint or out_dir, a finetune.py checkpoint, a Hugging "
                                      "Face GPT-2 / BERT folder, or minilm-l6; a chat model (also served on "
                                      "/v1/chat/completions and /chat): a .gguf file, a folder whose tokenizer "
                                      "has a chat template, or smollm2"})
    host: str = field(default="127.0.0.1", metadata={"help": "the address to listen on; 0.0.0.0 opens it to "
                                                    "the network (put --api_key or a proxy in front)"})
    port: int = field(default=8000, metadata={"help": "the TCP port"})
    api_key: str | None = field(default=None, metadata={"help": f"require 'Authorization: Bearer KEY' on /v1 "
                                                        f"and /metrics (or set {API_KEY_ENV}; none: open)"})
    cors_origin: list[str] = field(default_factory=list, metadata={"help": "a web origin that may call the API "
                                                                   "from a browser (none: CORS off)"})
    max_body_bytes: int = field(default=1_000_000, metadata={"help": "largest request body (413 above)"})
    max_texts: int = field(default=64, metadata={"help": "texts per classify / embed request"})
    max_text_chars: int = field(default=20_000, metadata={"help": "characters per text or prompt"})
    truncate: bool = field(default=False, metadata={"help": "cut a text longer than the model's context "
                                                    "instead of refusing it (a request's 'truncate' overrides)"})
    max_new_tokens: int = field(default=512, metadata={"help": "the most tokens one generate request may ask"})
    max_queue: int = field(default=64, metadata={"help": "requests waiting for a worker; past it, 503 at once"})
    workers: int = field(default=1, metadata={"help": "inference threads, each taking the oldest request "
                                              "(see docs/serving.md for why one)"})
    max_batch: int = field(default=32, metadata={"help": "texts one forward pass may gather from waiting "
                                                 "classify / tag / fill-mask / embed requests (1: no batching)"})
    threads: int = field(default=0, metadata={"help": "torch threads (0: the CPU cores, shared by the workers)"})
    request_timeout: float = field(default=30.0, metadata={"help": "seconds a request may wait and run (504)"})
    shutdown_timeout: float = field(default=30.0, metadata={"help": "on SIGTERM, seconds to finish the "
                                                            "requests in flight before exiting"})
    knowledge: str | None = field(default=None, metadata={"help": "a store of question/answer pairs (`python -m "
                                                          "minilm.assistant index --out FOLDER`): chat answers are "
                                                          "written from the nearest pairs, cited in \"sources\""})
    knowledge_k: int = field(default=3, metadata={"help": "with --knowledge: stored pairs put in the prompt"})
    knowledge_threshold: float | None = field(default=None, metadata={"help": "with --knowledge: below this cosine "
                                              "the answer is \"I don't know\" (default: what the store records)"})

    def __post_init__(self):
        if not self.ckpt:
            raise ConfigError("give at least one --ckpt FOLDER (or NAME=FOLDER)")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be in 0..65535 (0: any free port), got {self.port}")
        for name in ("max_body_bytes", "max_texts", "max_text_chars", "max_queue", "workers", "max_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.knowledge_k < 1 or not -1 <= (self.knowledge_threshold or 0) <= 1:
            raise ConfigError(f"--knowledge_k must be at least 1 and --knowledge_threshold a cosine in [-1, 1]; got "
                              f"{self.knowledge_k} and {self.knowledge_threshold}")
        if self.max_new_tokens < 0 or self.threads < 0:
            raise ConfigError("--max_new_tokens and --threads must be >= 0")
        for name in ("request_timeout", "shutdown_timeout"):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(f"--{name} must be a positive number of seconds, got {getattr(self, name)}")
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV) or None
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("--api_key is shorter than 8 characters: guessable; use a long random token, "
                              "e.g. from `python -c 'import secrets; print(secrets.token_urlsafe())'`")

    def torch_threads(self) -> int:
        """The cores, shared by the workers: more threads than cores only contend (docs/serving.md measures 1
        against 2 on 2 cores)."""
        if self.threads:
            return self.threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, cores // self.workers)
