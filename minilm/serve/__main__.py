"""`python -m minilm.serve`: the models of --ckpt behind HTTP, JSON in and out (docs/serving.md).

    python -m minilm.serve --ckpt out/sentiment-minilm
    python -m minilm.serve --ckpt out/sentiment-minilm --ckpt gpt=out/gpt-small --port 8000
    python -m minilm.serve --ckpt minilm-l6 --api_key "$(cat key.txt)"     (or MINILM_API_KEY=...)
    python -m minilm.serve --help                                          every flag, with its default

Each model is loaded once, before the port opens. SIGTERM (or Ctrl-C) stops the server gracefully: it stops
accepting connections, finishes the requests in flight, and exits within --shutdown_timeout seconds (what
still waits then is answered 503, a generation ends with the text it has; minilm/serve/server.py).
"""

import sys

import torch

from common.errors import run_command
from data.assets import BASE_MODELS, base_model_folder
from data.tokenizers import named_tokenizer
from minilm.training.cli import parse_args

from .app import create_app
from .config import ServeConfig
from .metrics import Metrics
from .models import load_served_model, parse_model_specs
from .server import serve
from .service import Service


def load_models(specs: list[str]) -> dict:
    """{name: ServedModel} for the --ckpt flags; an alias (minilm-l6) is fetched on first use."""
    models = {}
    for name, spec in parse_model_specs(specs).items():
        folder = str(base_model_folder(spec)) if spec in BASE_MODELS else spec
        models[name] = load_served_model(name, folder, base_model_folder, lambda: named_tokenizer("gpt2"))
        served = models[name]
        print(f"loaded {name}: {type(served.model).__name__} from {served.source} in {served.load_seconds:.1f} s, "
              f"serves {', '.join(served.endpoints)}", flush=True)
    return models


def main(argv=None) -> int:
    cfg = parse_args({}, {"serve": ServeConfig}, argv, description=__doc__.split("\n")[0],
                     prog="python -m minilm.serve")["serve"]
    torch.set_num_threads(cfg.torch_threads())
    app = create_app(Service(load_models(cfg.ckpt), cfg, Metrics()))
    print(f"{cfg.workers} worker(s), batches of up to {cfg.max_batch} texts, {torch.get_num_threads()} torch "
          f"thread(s); auth {'on' if cfg.api_key else 'off'}", flush=True)
    serve(app, app.state.service, cfg.host, cfg.port)  # returns after SIGTERM / Ctrl-C, every request answered
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
