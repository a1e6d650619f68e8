"""Generate text from a GPT checkpoint written by train_gpt.py.

    python sample.py --ckpt out/gpt-small/best --prompt "ROMEO:"
    python sample.py --ckpt out/gpt-small/best --prompt "ROMEO:" --temperature 0.8 --top_k 200 --top_p 0.95 \\
        --num_samples 3 --max_new_tokens 500 --seed 1
    python sample.py --ckpt out/gpt-small/best --temperature 0     # greedy: the same text every time

Reading path: load_gpt rebuilds the GPT from the folder's config.json and loads model.safetensors
(minilm/training/checkpoint.py); GPT.generate (minilm/model/gpt.py) then extends the prompt one token at a time,
feeding only the newest token through the model thanks to the KV cache.
"""

import argparse
import sys

import torch

from common.errors import CheckpointError
from minilm import GPT, GPTConfig
from minilm.training.checkpoint import load_checkpoint, load_model_weights, resolve_checkpoint
from minilm.training.distributed import resolve_device
from tokenizer import TokenizerFileError, load_tokenizer


def load_gpt(folder, device: str = "cpu"):
    """(GPT in eval mode, tokenizer) from a train_gpt.py checkpoint folder (its best/ or ckpt/)."""
    folder = resolve_checkpoint(folder)
    state_dict, config, _ = load_checkpoint(folder, with_train_state=False)
    if config.get("model_class") != "GPT" or not isinstance(config.get("model"), dict):
        raise CheckpointError(
            f"{folder / 'config.json'} is not a train_gpt.py checkpoint (model_class "
            f"{config.get('model_class')!r}, expected 'GPT'); pass the best/ or ckpt/ folder of a "
            "train_gpt.py run (a Hugging Face GPT-2 folder loads with minilm.from_pretrained)")
    try:
        model_cfg = GPTConfig.from_dict(config["model"])
    except ValueError as err:
        raise CheckpointError(f"{folder / 'config.json'}: bad model config: {err}") from None
    model = GPT(model_cfg)
    load_model_weights(model, state_dict)
    tokenizer = load_tokenizer(folder / "tokenizer")
    if tokenizer.vocab_size != model_cfg.vocab_size:
        raise CheckpointError(f"{folder / 'tokenizer'} has {tokenizer.vocab_size} ids but the model "
                              f"{model_cfg.vocab_size}; the tokenizer is not the one the model was trained with")
    return model.to(device).eval(), tokenizer


def generate_samples(model: GPT, tokenizer, prompt: str, num_samples: int, max_new_tokens: int,
                     temperature: float = 0.8, top_k: int | None = 200, top_p: float | None = None,
                     seed: int | None = None) -> list[str]:
    """num_samples continuations of prompt, drawn in one batch; each text starts with the prompt."""
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("--prompt encodes to no tokens; give it at least one character")
    device = next(model.parameters()).device
    prompts = torch.tensor([ids] * num_samples, device=device)  # (num_samples, T)
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()  # a fresh random seed: different samples on every run
    else:
        generator.manual_seed(seed)
    out = model.generate(prompts, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                         generator=generator)  # (num_samples, T + max_new_tokens)
    return [tokenizer.decode(row.tolist()) for row in out]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--ckpt", required=True, help="a train_gpt.py checkpoint folder, e.g. out/gpt-small/best")
    parser.add_argument("--prompt", default="\n", help="text the samples start from (default a newline)")
    parser.add_argument("--num_samples", type=int, default=3, help="how many samples (default 3)")
    parser.add_argument("--max_new_tokens", type=int, default=500, help="tokens added to the prompt (default 500)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy; below 1 sharpens (default 0.8)")
    parser.add_argument("--top_k", type=int, default=200, help="sample among the k likeliest tokens (default 200)")
    parser.add_argument("--top_p", type=float, default=None, help="nucleus sampling, e.g. 0.95 (default off)")
    parser.add_argument("--seed", type=int, default=None, help="fixes the samples (default: new ones each run)")
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    return parser


def main(argv=None) -> list[str]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error(f"--num_samples must be at least 1, got {args.num_samples}")
    if args.max_new_tokens < 0:
        parser.error(f"--max_new_tokens must be >= 0, got {args.max_new_tokens}")
    try:
        model, tokenizer = load_gpt(args.ckpt, resolve_device(args.device))
        samples = generate_samples(model, tokenizer, args.prompt, args.num_samples, args.max_new_tokens,
                                   args.temperature, args.top_k, args.top_p, args.seed)
    except (CheckpointError, TokenizerFileError, ValueError) as err:
        parser.error(str(err))  # exits with status 2, the message on stderr
    for i, text in enumerate(samples, 1):
        print(f"--- sample {i} ---\n{text}\n")
    return samples


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
