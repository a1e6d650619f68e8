"""Pretrain a GPT on Shakespeare (or any text file) with next-token prediction.

    python train_gpt.py --config small                      # CPU, a few minutes, char-level
    python train_gpt.py --config small --data my.txt --max_iters 500
    python train_gpt.py --config gpt2 --tokenizer gpt2 --device cuda --dtype bfloat16 --compile
    torchrun --nproc_per_node=2 train_gpt.py --config small    # DDP
    python train_gpt.py --help                              # every flag, with its default

Reading path: this file builds the data, a GPT (minilm/gpt.py) and a Trainer (minilm/trainer.py);
the Trainer calls LanguageModelTask.loss below, which calls GPT.forward.
"""

import math
import sys
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from data.assets import cache_dir
from data.prepare import fingerprint_tokenizer, get_batch, prepare_token_files, read_text_file, split_text
from data.tokenizer_cache import cached_tokenizer
from minilm import GPT, GPTConfig
from minilm.cli import parse_args
from minilm.distributed import init_distributed, main_process_first, resolve_device
from minilm.trainer import Task, Trainer, TrainConfig, seed_everything
from tokenizer import TOKENIZER_KINDS


@dataclass
class DataConfig:
    data: str | None = field(default=None, metadata={"help": "a UTF-8 text file (default: Shakespeare's plays)"})
    tokenizer: str = field(default="char", metadata={"choices": TOKENIZER_KINDS, "help": "how text becomes ids"})
    tokenizer_vocab_size: int = field(default=4096, metadata={"help": "vocabulary size for bpe/wordpiece/sentencepiece"})
    val_fraction: float = field(default=0.1, metadata={"help": "share of the text held out for validation"})
    num_samples: int = field(default=2, metadata={"help": "samples printed at the end"})
    sample_tokens: int = field(default=300, metadata={"help": "tokens per sample"})


# Each preset sets model, training and data fields; any flag overrides them.
PRESETS = {
    # CPU-sized and character-level: about 5 minutes on 2 cores, data preparation included.
    "small": {
        "model": dict(GPTConfig.PRESETS["small"], block_size=128),
        "train": dict(out_dir="out/gpt-small", max_iters=2000, batch_size=16, lr=2e-3, warmup_iters=100,
                      eval_interval=500, eval_iters=20, log_interval=100, weight_decay=0.1, beta2=0.99),
    },
    # nanoGPT's published CPU settings, for comparing figures on tinyshakespeare (--data). nanoGPT drops
    # the biases (--bias false here); with them the validation loss came out lower (see README, Figures).
    "baby": {
        "model": dict(vocab_size=96, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        "train": dict(out_dir="out/gpt-baby", max_iters=2000, batch_size=12, lr=1e-3, min_lr=1e-4,
                      warmup_iters=100, lr_decay_iters=2000, eval_interval=250, eval_iters=20, log_interval=100),
    },
    # GPT-2 124M with the real GPT-2 vocabulary: a GPU run.
    "gpt2": {
        "model": dict(GPTConfig.PRESETS["gpt2"]),
        "train": dict(out_dir="out/gpt2", max_iters=5000, batch_size=16, grad_accum_steps=4, lr=6e-4,
                      warmup_iters=200, eval_interval=500, weight_decay=0.1, beta2=0.95),
        "data": dict(tokenizer="gpt2"),
    },
}


class LanguageModelTask(Task):
    """Next-token prediction on random windows of a token stream (one memmap per split)."""

    def __init__(self, tokens: dict[str, np.ndarray], block_size: int):
        self.tokens, self.block_size = tokens, block_size

    def get_batch(self, split, batch_size, generator):
        x, y = get_batch(self.tokens[split], batch_size, self.block_size, generator)  # (B, T) each
        return {"idx": x, "targets": y}

    def loss(self, model, batch):
        _, loss = model(batch["idx"], targets=batch["targets"])
        return loss

    def evaluate(self, model, cfg, device):
        metrics = super().evaluate(model, cfg, device)
        metrics["val_ppl"] = math.exp(metrics["val_loss"])  # perplexity: e^(mean negative log-likelihood)
        return metrics


def load_corpus(data_cfg: DataConfig, block_size: int) -> dict[str, str]:
    """The training and validation texts."""
    if data_cfg.data is None:
        from data.shakespeare import shakespeare_splits
        train, val = shakespeare_splits(data_cfg.val_fraction)
    else:
        min_chars = int(2 * (block_size + 1) / min(data_cfg.val_fraction, 1 - data_cfg.val_fraction))
        text = read_text_file(data_cfg.data, min_chars=min_chars)
        train, val = split_text(text, data_cfg.val_fraction)
    return {"train": train, "val": val}


def prepare_data(data_cfg: DataConfig, block_size: int):
    """Tokenizer and token memmaps, made once and reused while the text and tokenizer are unchanged."""
    texts = load_corpus(data_cfg, block_size)
    # A character vocabulary must cover the validation text too; a learned one sees only training text.
    vocab_text = texts["train"] + texts["val"] if data_cfg.tokenizer == "char" else texts["train"]
    tokenizer = cached_tokenizer(data_cfg.tokenizer, vocab_text, data_cfg.tokenizer_vocab_size)
    fingerprint = fingerprint_tokenizer(tokenizer)
    out_dir = cache_dir() / "tokens" / fingerprint[:16]
    tokens = prepare_token_files(texts, tokenizer, out_dir, fingerprint)
    for split, ids in tokens.items():
        if len(ids) <= block_size:
            raise ValueError(f"the {split} split has only {len(ids)} tokens, fewer than block_size + 1 = "
                             f"{block_size + 1}; use a longer text or a smaller --block_size")
    return tokenizer, tokens


def print_samples(model: GPT, tokenizer, data_cfg: DataConfig, device: str) -> None:
    model.eval()
    prompt = torch.tensor([tokenizer.encode("\n")], device=device)  # (1, 1)
    generator = torch.Generator(device=device).manual_seed(0)
    for i in range(data_cfg.num_samples):
        out = model.generate(prompt, data_cfg.sample_tokens, temperature=0.8, top_k=200, generator=generator)
        print(f"--- sample {i + 1} ---\n{tokenizer.decode(out[0].tolist()).strip()}\n")


def main(argv=None):
    configs = parse_args(PRESETS, {"model": GPTConfig, "train": TrainConfig, "data": DataConfig}, argv,
                         default_preset="small", description=__doc__.split("\n")[0])
    model_cfg, train_cfg, data_cfg = configs["model"], configs["train"], configs["data"]
    dist, device = init_distributed(resolve_device(train_cfg.device))
    with main_process_first(dist):
        tokenizer, tokens = prepare_data(data_cfg, model_cfg.block_size)
    model_cfg.vocab_size = tokenizer.vocab_size
    if dist.is_main:
        print(f"data: {len(tokens['train']):,} train / {len(tokens['val']):,} val tokens, "
              f"{data_cfg.tokenizer} tokenizer with {tokenizer.vocab_size:,} ids")

    seed_everything(train_cfg.seed)
    model = GPT(model_cfg)
    if dist.is_main:
        print(f"model: {model.num_parameters() / 1e6:.2f}M parameters, {model_cfg.n_layer} layers, "
              f"{model_cfg.n_head} heads, {model_cfg.n_embd} wide, context {model_cfg.block_size}")
    checkpoint_config = {"model_class": "GPT", "model": model_cfg.to_dict(), "data": asdict(data_cfg)}
    trainer = Trainer(model, LanguageModelTask(tokens, model_cfg.block_size), train_cfg, checkpoint_config,
                      write_extra=lambda folder: tokenizer.save(folder / "tokenizer"))
    metrics = trainer.run()
    if dist.is_main:
        if metrics:
            print(f"final: val loss {metrics['val_loss']:.4f} (perplexity {metrics['val_ppl']:.2f}), "
                  f"train loss {metrics['train_loss']:.4f}; checkpoints in {train_cfg.out_dir}/best and /ckpt")
        print_samples(trainer.model, tokenizer, data_cfg, trainer.device)
    return metrics


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
