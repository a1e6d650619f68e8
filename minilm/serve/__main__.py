"""`python -m minilm.serve`: the models of --ckpt behind HTTP, JSON in and out (docs/serving.md).

    python -m minilm.serve --ckpt out/sentiment-minilm
    python -m minilm.serve --ckpt out/sentiment-minilm --ckpt gpt=out/gpt-small --port 8000
    python -m minilm.serve --ckpt minilm-l6 --api_key "$(cat key.txt)"     (or MINILM_API_KEY=...)
    python -m minilm.serve --ckpt smollm2                                  a chat model: /v1/chat/completions, /chat
    python -m minilm.serve --ckpt smollm2 --knowledge out/kb               ... answering from stored Q/A pairs (RAG)
    python -m minilm.serve --help                                          every flag, with its default

Each model is loaded once, before the port opens. SIGTERM (or Ctrl-C) stops the server gracefully: it stops
accepting connections, finishes the requests in flight, and exits within --shutdown_timeout seconds (what
still waits then is answered 503, a generation ends with the text it has; minilm/serve/server.py).
"""

import sys
import time

import torch

from common.errors import ConfigError, run_command
from data.assets import base_model_folder, model_path
from data.tokenizers import named_tokenizer
from minilm.assistant.encoder import open_encoder
from minilm.assistant.knowledge import load_knowledge
from minilm.assistant.rag import Retriever
from minilm.chat.load import end_ids, load_chat_model
from minilm.gguf import is_gguf
from minilm.model import GPT
from minilm.training.cli import parse_args

from .app import create_app
from .config import ServeConfig
from .metrics import Metrics
from .models import has_chat_template, load_served_model, parse_model_specs, served_chat_model
from .server import serve
from .service import Service


def load_model(name: str, spec: str):
    """One --ckpt: an alias (minilm-l6, smollm2) fetched on first use; a chat model (a .gguf file, a folder whose
    tokenizer has a chat template) through minilm.chat's loader, as `python -m minilm.chat` loads it."""
    path = model_path(spec)
    if path.exists() and (is_gguf(path) or has_chat_template(path)):
        start = time.perf_counter()
        chat = load_chat_model(path)
        return served_chat_model(name, chat, time.perf_counter() - start)
    served = load_served_model(name, str(path), base_model_folder, lambda: named_tokenizer("gpt2"))
    if isinstance(served.model, GPT) and getattr(served.tokenizer, "chat_template", None):
        served.end_ids = end_ids(served.tokenizer)  # e.g. a fine-tuned chat model: it chats too
    return served


def load_models(specs: list[str]) -> dict:
    """{name: ServedModel} for the --ckpt flags."""
    models = {}
    for name, spec in parse_model_specs(specs).items():
        models[name] = load_model(name, spec)
        served = models[name]
        print(f"loaded {name}: {type(served.model).__name__} from {served.source} in {served.load_seconds:.1f} s, "
              f"serves {', '.join(served.endpoints)}", flush=True)
    return models


def load_retriever(cfg: ServeConfig, models: dict):
    """--knowledge: the store, and the encoder it records (checked to be the one that built it); the RAG hook of
    every chat model served (minilm/assistant/rag.py). The service itself never reads data/: the store is a file."""
    if cfg.knowledge is None:
        return None
    if not any("chat" in served.endpoints for served in models.values()):
        raise ConfigError(f"--knowledge {cfg.knowledge}: no chat model among --ckpt to answer from it; serve one "
                          "too (e.g. --ckpt smollm2)")
    knowledge = load_knowledge(cfg.knowledge)
    encoder = open_encoder(model_path(knowledge.encoder_name), knowledge.encoder_name)
    retriever = Retriever(knowledge, encoder, cfg.knowledge_k, cfg.knowledge_threshold)
    print(f"knowledge: {len(knowledge.pairs)} question/answer pairs from {cfg.knowledge}, embedded by "
          f"{knowledge.encoder_name}; top {retriever.k} in each chat prompt, \"I don't know\" below "
          f"{retriever.threshold:.2f}", flush=True)
    return retriever


def main(argv=None) -> int:
    cfg = parse_args({}, {"serve": ServeConfig}, argv, description=__doc__.split("\n")[0],
                     prog="python -m minilm.serve")["serve"]
    torch.set_num_threads(cfg.torch_threads())
    models = load_models(cfg.ckpt)
    app = create_app(Service(models, cfg, Metrics(), load_retriever(cfg, models)))
    print(f"{cfg.workers} worker(s), batches of up to {cfg.max_batch} texts, {torch.get_num_threads()} torch "
          f"thread(s); auth {'on' if cfg.api_key else 'off'}", flush=True)
    serve(app, app.state.service, cfg.host, cfg.port)  # returns after SIGTERM / Ctrl-C, every request answered
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
