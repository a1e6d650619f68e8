"""Generate text from a decoder: a train_gpt.py checkpoint (GPT or Llama), a .gguf file, a Hugging Face GPT-2 /
Llama folder with a minilm tokenizer/ beside it, or the alias smollm2 (fetched on first use).

    python sample.py --ckpt out/gpt-small/best --prompt "ROMEO:"
    python sample.py --ckpt out/gpt-small/best --prompt "ROMEO:" --temperature 0.8 --top_k 200 --top_p 0.95 \\
        --num_samples 3 --max_new_tokens 500 --seed 1
    python sample.py --ckpt out/gpt-small/best --temperature 0     # greedy: the same text every time
    python sample.py --ckpt smollm2 --prompt "Once upon a time" --max_new_tokens 20   # plain text, no chat template

Reading path: load_decoder (minilm/chat/load.py) rebuilds the model from whichever form --ckpt names, with its
tokenizer; GPT.generate (minilm/model/gpt.py) then extends the prompt one token at a time, feeding only the
newest token through the model thanks to the KV cache. A sample ends early at the model's end token (its
eos, or <|endoftext|> / <|im_end|>), which is left out of the text; a character-level model has none.
"""

import os
import sys
from dataclasses import dataclass, field

import torch

from common.errors import ConfigError, run_command
from data.assets import model_path
from minilm import GPT
from minilm.chat.load import end_ids, load_decoder
from minilm.model.sampling import sampling_problem
from minilm.training.cli import parse_args
from minilm.training.distributed import resolve_device
from minilm.training.train_config import device_problem


def load_gpt(spec: str, device: str = "cpu"):
    """(GPT or Llama in eval mode, tokenizer) of what --ckpt names: a path or a model alias."""
    decoder = load_decoder(model_path(spec))  # an alias (smollm2) is fetched into the asset cache on first use
    return decoder.model.to(device), decoder.tokenizer


def generate_samples(model: GPT, tokenizer, prompt: str, num_samples: int, max_new_tokens: int,
                     temperature: float = 0.8, top_k: int | None = 200, top_p: float | None = None,
                     seed: int | None = None, eos_token_ids: tuple[int, ...] = ()) -> list[str]:
    """num_samples continuations of prompt, drawn in one batch; each text starts with the prompt and stops
    before the first of eos_token_ids it produced."""
    try:
        ids = tokenizer.encode(prompt)
    except ValueError as err:  # e.g. a character the vocabulary lacks
        raise ConfigError(f"--prompt: {err}") from None
    if not ids:
        raise ConfigError("--prompt encodes to no tokens; give it at least one character")
    device = next(model.parameters()).device
    check_memory(model.config, len(ids), num_samples, max_new_tokens, device)
    prompts = torch.tensor([ids] * num_samples, device=device)  # (num_samples, T)
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()  # a fresh random seed: different samples on every run
    else:
        generator.manual_seed(seed)
    out = model.generate(prompts, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                         generator=generator, eos_token_ids=eos_token_ids)  # (num_samples, <= T + max_new_tokens)
    return [tokenizer.decode(ids + until_end(row[len(ids):].tolist(), eos_token_ids)) for row in out]


def until_end(new_ids: list[int], eos_token_ids) -> list[int]:
    """The new tokens before the first end token (a finished row repeats it while the others go on)."""
    ends = [i for i, token in enumerate(new_ids) if token in eos_token_ids]
    return new_ids[:ends[0]] if ends else new_ids


def check_memory(config, prompt_tokens: int, num_samples: int, max_new_tokens: int, device) -> None:
    """Refuse, before allocating anything, a batch of samples that cannot fit in memory: the allocations of a
    batch too large may each succeed, and the system then kills the process. The estimate, per sample in float32:
    the KV cache at full context, one forward pass over the context (its logits, MLP and attention scores), and
    the ids (int64, copied as they grow). The context is at most block_size (generate crops it there), and a
    Llama's cache keeps only its kv_heads key/value heads (grouped-query attention)."""
    T, C = min(config.block_size, prompt_tokens + max_new_tokens), config.n_embd
    kv_width = C // config.n_head * getattr(config, "kv_heads", config.n_head)  # C for GPT-2
    per_sample = 4 * (2 * config.n_layer * T * kv_width + T * (config.vocab_size + 4 * C) + config.n_head * T * T) \
        + 2 * 8 * (prompt_tokens + max_new_tokens)
    needed = num_samples * per_sample
    if device.type == "cuda":
        memory, where = torch.cuda.mem_get_info(device)[1], f"{device}'s"
    else:
        memory, where = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's"
    if needed > memory:
        raise ConfigError(f"--num_samples {num_samples} with --max_new_tokens {max_new_tokens} needs about "
                          f"{needed / 1e9:,.1f} GB, more than {where} {memory / 1e9:,.1f} GB of memory; ask for "
                          "fewer samples or tokens")


@dataclass
class SampleConfig:
    ckpt: str = field(metadata={"help": "a train_gpt.py checkpoint folder (e.g. out/gpt-small/best), a .gguf file, "
                                        "a Hugging Face GPT-2 / Llama folder with a minilm tokenizer/, or smollm2"})
    prompt: str = field(default="\n", metadata={"help": "text the samples start from (a newline by default)"})
    num_samples: int = field(default=3, metadata={"help": "how many samples"})
    max_new_tokens: int = field(default=500, metadata={"help": "tokens added to the prompt"})
    temperature: float = field(default=0.8, metadata={"help": "0 is greedy; below 1 sharpens, above 1 flattens"})
    top_k: int | None = field(default=200, metadata={"help": "sample among the k likeliest tokens (none: all)"})
    top_p: float | None = field(default=None, metadata={"help": "nucleus sampling, e.g. 0.95 (none: off)"})
    seed: int | None = field(default=None, metadata={"help": "fixes the samples (none: new ones each run)"})
    device: str = field(default="auto", metadata={"help": "auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps"})

    def __post_init__(self):
        if self.num_samples < 1:
            raise ConfigError(f"--num_samples must be at least 1, got {self.num_samples}")
        if self.max_new_tokens < 0:
            raise ConfigError(f"--max_new_tokens must be >= 0, got {self.max_new_tokens}")
        problem = sampling_problem(self.temperature, self.top_k, self.top_p)  # the sampler's own rule
        if problem is not None:
            raise ConfigError(f"--{problem}")
        if (problem := device_problem(self.device)) is not None:
            raise ConfigError(problem)


def main(argv=None) -> list[str]:
    cfg = parse_args({}, {"sample": SampleConfig}, argv, description=__doc__.split("\n")[0],
                     prog="sample.py")["sample"]
    model, tokenizer = load_gpt(cfg.ckpt, resolve_device(cfg.device))
    samples = generate_samples(model, tokenizer, cfg.prompt, cfg.num_samples, cfg.max_new_tokens,
                               cfg.temperature, cfg.top_k, cfg.top_p, cfg.seed, end_ids(tokenizer))
    for i, text in enumerate(samples, 1):
        print(f"--- sample {i} ---\n{text}\n")
    return samples


if __name__ == "__main__":
    sys.exit(run_command(main))
