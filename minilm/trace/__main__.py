"""`python -m minilm.trace`: one forward pass, step by step, with shapes and the lines that made them.

Each named step gets its shape, dtype, statistics and the line of minilm/model/ that produced it (docs/trace.md).

    python -m minilm.trace gpt --config small          a fresh GPT of a GPTConfig preset (random weights)
    python -m minilm.trace llama --config small        a fresh Llama of a LlamaConfig preset (RoPE, GQA, SwiGLU)
    python -m minilm.trace bert --config small         a fresh BERT (BertForPreTraining) of a BertConfig preset
    python -m minilm.trace out/gpt-small/best          a minilm checkpoint, a run's out_dir, a finetune.py checkpoint
    python -m minilm.trace path/to/hf-folder           a Hugging Face GPT-2 or BERT folder
    python -m minilm.trace minilm-l6 --text "Hello"    a base model named by its alias (fetched on first use)
    python -m minilm.trace smollm2                     a GGUF file, or SmolLM2's by its alias (fetched on first use)
    ... --layers 2 (blocks shown in full) --json (every step, for programs)
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from common.errors import ConfigError, MissingFileError, run_command
from data.assets import BASE_MODELS, GGUF_MODELS, base_model_folder, model_path
from data.tokenizers import named_tokenizer
from minilm.finetune.checkpoints import open_model
from minilm.gguf.load import is_gguf, load_gguf
from minilm.model import GPT, BertForPreTraining, Llama
from minilm.training.cli import parse_args
from tokenizer.gguf_vocab import tokenizer_from_gguf

from .inputs import DEFAULT_TEXT, FRESH_MODELS, fresh_model, make_input
from .recorder import ShapeTrace
from .table import format_json, format_report

FRESH = tuple(FRESH_MODELS)  # gpt, llama, bert
ALIASES = (*BASE_MODELS, *GGUF_MODELS)


@dataclass
class TraceOptions:
    model: str = field(metadata={"nargs": None, "help": "gpt, llama or bert (a fresh model of --config), a minilm "
                                 "checkpoint or run out_dir, a finetune.py checkpoint, a Hugging Face folder, "
                                 f"a .gguf file, or a model alias ({', '.join(ALIASES)})"})
    config: str = field(default="small", metadata={"help": "the preset of a fresh gpt, llama or bert"})
    text: str | None = field(default=None, metadata={"help": f"the input (none: {DEFAULT_TEXT!r})"})
    layers: int = field(default=1, metadata={"help": "how many blocks to show in full (the rest: their output)"})
    json: bool = field(default=False, metadata={"help": "print every step as JSON instead of the table"})
    seed: int = field(default=0, metadata={"help": "the random weights of a fresh gpt, llama or bert"})

    def __post_init__(self):
        if self.text is not None and not self.text.strip():
            raise ConfigError("--text is empty; give a sentence, or leave --text out for the default")
        if self.layers < 0:
            raise ConfigError(f"--layers must be 0 or more, got {self.layers}")


def main(argv=None) -> int:
    parsed = parse_args({}, {"trace": TraceOptions}, argv, description=__doc__.split("\n")[0],
                        prog="python -m minilm.trace")
    options = parsed["trace"]
    model, tokenizer, where, notes = open_traced_model(options, "config" in parsed["given"])
    backbone = model.bert if isinstance(model, BertForPreTraining) else model
    n_layer = backbone.config.n_layer
    if options.layers > n_layer:
        raise ConfigError(f"--layers {options.layers}: this model has {n_layer} blocks; give 0 to {n_layer}")

    trace_input = make_input(model, tokenizer, options.text)
    with torch.no_grad(), ShapeTrace(model) as trace:
        model(**trace_input.forward_kwargs)
    notes += trace_input.notes + trace.notes

    title = f"{describe(backbone)}   ({where})"
    if options.json:
        sys.stdout.write(format_json(title, trace_input.text, trace_input.pieces, notes, trace.steps))
    else:
        sys.stdout.write(format_report(title, input_line(trace_input.text, trace_input.pieces), notes,
                                       trace.steps, options.layers))
    return 0


def open_traced_model(options: TraceOptions, config_given: bool):
    """(model in eval mode, tokenizer, where it came from, notes)."""
    if options.model in FRESH:
        model, tokenizer, notes = fresh_model(options.model, options.config, options.seed)
        return model, tokenizer, f"fresh {type(model).__name__}, --config {options.config}", notes
    if config_given:
        raise ConfigError(f"--config picks the preset of a fresh {', '.join(FRESH)}; {options.model} brings its "
                          "own config")
    if options.model not in ALIASES and not Path(options.model).exists():
        raise MissingFileError(f"{options.model}: no such model or folder; give {', '.join(FRESH)} (a fresh model), "
                               "a minilm checkpoint or run out_dir, a finetune.py checkpoint, a Hugging Face GPT-2 / "
                               f"BERT folder, a .gguf file, or one of {', '.join(ALIASES)}")
    path = model_path(options.model)  # an alias fetched into the asset cache on first use
    if is_gguf(path):  # llama.cpp's one file: the model and its tokenizer (minilm/gguf/, tokenizer/gguf_vocab.py)
        return load_gguf(path), tokenizer_from_gguf(path), options.model, []
    model, tokenizer = open_model(str(path), "the folder", resolve_alias=base_model_folder,
                                  gpt2_tokenizer=lambda: named_tokenizer("gpt2"))
    return model, tokenizer, options.model, []


def describe(backbone) -> str:
    config = backbone.config
    heads = f"{config.n_head} heads"
    if isinstance(backbone, Llama):
        kind = "Llama (pre-norm RMSNorm, causal, RoPE, SwiGLU)"
        heads += f" sharing {config.kv_heads} key/value heads"
    else:
        kind = "GPT (pre-LN, causal)" if isinstance(backbone, GPT) else "BERT (post-LN, bidirectional)"
    return (f"{kind}: {config.n_layer} blocks, {heads}, n_embd {config.n_embd}, "
            f"block_size {config.block_size}, vocab_size {config.vocab_size}")


def input_line(text: str, pieces: list[str], shown: int = 16) -> str:
    tokens = " ".join(repr(piece) for piece in pieces[:shown]) + (" ..." if len(pieces) > shown else "")
    return f"{text!r} -> {len(pieces)} tokens: {tokens}"


if __name__ == "__main__":
    sys.exit(run_command(main))
