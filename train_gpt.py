"""Pretrain a GPT on Shakespeare (or any text file) with next-token prediction.

    python train_gpt.py --config small                      # CPU, a few minutes, char-level
    python train_gpt.py --config small --data my.txt --max_iters 500
    python train_gpt.py --config toy                        # CPU, seconds: learn to sort digit strings
    python train_gpt.py --config small-llama                # the same run with Llama's parts (docs/llama.md)
    python train_gpt.py --config gpt2 --tokenizer gpt2 --device cuda --dtype bfloat16 --compile
    torchrun --nproc_per_node=2 train_gpt.py --config small    # DDP
    python train_gpt.py --help                              # every flag, with its default

Reading path: this file builds the data (data/prepare.py), a GPT (minilm/model/gpt.py; --architecture llama:
a Llama, minilm/model/llama.py) and a Trainer
(minilm/training/trainer.py); the Trainer calls LanguageModelTask.loss (minilm/training/lm_task.py),
which calls GPT.forward.
"""

import argparse
import sys
from dataclasses import asdict, dataclass, field

import torch

from common.errors import ConfigError, run_command
from data.prepare import lm_token_files, lm_tokenizer, load_corpus
from data.tokenizers import TOKENIZER_KINDS
from minilm.model import GPT, GPTConfig, Llama, LlamaConfig
from minilm.training import resume
from minilm.training.cli import parse_args
from minilm.training.distributed import init_distributed, main_process_first, resolve_device
from minilm.training.lm_task import LanguageModelTask
from minilm.training.presets import GPT_PRESETS as PRESETS
from minilm.training.run_dir import check_out_dir
from minilm.training.toy_tasks import ToyConfig, make_toy_task, train_toy_model
from minilm.training.trainer import Trainer, TrainConfig, seed_everything
from tokenizer import CharTokenizer, load_tokenizer
from tokenizer.bpe import SPECIAL_MODES


# --architecture: the model's parts, and the class config.json names
ARCHITECTURES = {"gpt2": ("GPT", GPT, GPTConfig), "llama": ("Llama", Llama, LlamaConfig)}


@dataclass
class DataConfig:
    architecture: str = field(default="gpt2", metadata={
        "choices": tuple(ARCHITECTURES), "help": "the model's parts: gpt2 (LayerNorm, learned positions, GELU MLP) "
                                                 "or llama (RMSNorm, rotary positions, SwiGLU, grouped-query attention)"})
    data: str | None = field(default=None, metadata={"help": "a UTF-8 text file (default: Shakespeare's plays)"})
    tokenizer: str = field(default="char", metadata={"choices": TOKENIZER_KINDS, "help": "how text becomes ids"})
    tokenizer_vocab_size: int = field(default=4096, metadata={"help": "vocabulary size for "
                                                                      "bpe/wordpiece/sentencepiece"})
    val_fraction: float = field(default=0.1, metadata={"help": "share of the text held out for validation"})
    special_tokens: str = field(default="raise", metadata={
        "choices": SPECIAL_MODES, "help": "bpe/gpt2: what <|endoftext|> in the text becomes: raise (an error), allow "
                                          "(its id: a document boundary) or text (plain characters)"})
    num_samples: int = field(default=2, metadata={"help": "samples printed at the end"})
    sample_tokens: int = field(default=300, metadata={"help": "tokens per sample"})

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")
        if self.tokenizer_vocab_size < 1 or self.num_samples < 0 or self.sample_tokens < 0:
            raise ConfigError("tokenizer_vocab_size must be positive, num_samples and sample_tokens >= 0")


# What --resume lets a data flag change: the text (it says so) and what is printed at the end.
DATA_MAY_CHANGE_ON_RESUME = {"data", "val_fraction", "num_samples", "sample_tokens", "special_tokens"}

def print_samples(model: GPT, tokenizer, data_cfg: DataConfig, device: str) -> None:
    model.eval()
    prompt = torch.tensor([tokenizer.encode("\n")], device=device)  # (1, 1)
    generator = torch.Generator(device=device).manual_seed(0)
    for i in range(data_cfg.num_samples):
        out = model.generate(prompt, data_cfg.sample_tokens, temperature=0.8, top_k=200, generator=generator)
        print(f"--- sample {i + 1} ---\n{tokenizer.decode(out[0].tolist()).strip()}\n")


def train_toy(model_cls, model_cfg, train_cfg: TrainConfig, toy_cfg: ToyConfig) -> dict:
    """--toy_task: a toy Task (minilm/training/toy_tasks.py) instead of the text; a CharTokenizer over its
    alphabet goes into the checkpoint, so sample.py can load it."""
    task = make_toy_task(toy_cfg, "GPT")
    return train_toy_model(model_cls, model_cfg, train_cfg, toy_cfg, task, CharTokenizer(task.vocab))


def requested_architecture(argv) -> str:
    """The architecture a command line asks for (--architecture, else its --config preset's): it decides the
    model config's flags (LlamaConfig adds n_kv_head, rope_theta, ...), so it is read before the full parse."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--config", default="small")
    peek.add_argument("--architecture")
    known, _ = peek.parse_known_args(sys.argv[1:] if argv is None else argv)
    chosen = known.architecture or PRESETS.get(known.config, {}).get("data", {}).get("architecture", "gpt2")
    return chosen if chosen in ARCHITECTURES else "gpt2"  # a bad name: the full parse says so


def main(argv=None):
    model_class, model_cls, config_cls = ARCHITECTURES[requested_architecture(argv)]
    configs = parse_args(PRESETS, {"model": config_cls, "train": TrainConfig, "data": DataConfig, "toy": ToyConfig},
                         argv, default_preset="small", description=__doc__.split("\n")[0])
    model_cfg, train_cfg, data_cfg, toy_cfg = configs["model"], configs["train"], configs["data"], configs["toy"]
    check_out_dir(train_cfg.out_dir, train_cfg.resume, train_cfg.overwrite,  # before any slow preparation
                  {f"--data {data_cfg.data}": data_cfg.data}, "train_gpt.py")
    saved = resume.saved_run_config(train_cfg.out_dir, model_class) if train_cfg.resume else None
    if saved is not None:  # the model and the ids the run was built with (minilm/training/resume.py)
        model_cfg = resume.resumed_config(model_cfg, saved["model"], configs["given"], resume.MAY_CHANGE_ON_RESUME)
        data_cfg = resume.resumed_config(data_cfg, saved.get("data", {}), configs["given"],
                                         DATA_MAY_CHANGE_ON_RESUME)
        toy_cfg = resume.resumed_config(toy_cfg, saved.get("toy", {}), configs["given"], set())
    if toy_cfg.toy_task is not None:
        return train_toy(model_cls, model_cfg, train_cfg, toy_cfg)
    dist, device = init_distributed(resolve_device(train_cfg.device))
    with main_process_first(dist):
        texts = load_corpus(data_cfg.data, data_cfg.val_fraction, model_cfg.block_size)
        if saved is not None:
            tokenizer = load_tokenizer(resume.checkpoint_to_resume(train_cfg.out_dir) / "tokenizer")
            resume.note_changed_text(saved, resume.text_fingerprint(texts))
        else:
            tokenizer = lm_tokenizer(data_cfg.tokenizer, data_cfg.tokenizer_vocab_size, texts)
        tokens = lm_token_files(texts, tokenizer, model_cfg.block_size, data_cfg.special_tokens)
    model_cfg.vocab_size = tokenizer.vocab_size
    if dist.is_main:
        print(f"data: {len(tokens['train']):,} train / {len(tokens['val']):,} val tokens, "
              f"{data_cfg.tokenizer} tokenizer with {tokenizer.vocab_size:,} ids")

    seed_everything(train_cfg.seed)
    model = model_cls(model_cfg)
    if dist.is_main:
        print(f"model: {model.num_parameters() / 1e6:.2f}M parameters, {model_cfg.n_layer} layers, "
              f"{model_cfg.n_head} heads, {model_cfg.n_embd} wide, context {model_cfg.block_size}")
    checkpoint_config = {"model_class": model_class, "model": model_cfg.to_dict(), "data": asdict(data_cfg),
                         "data_sha256": resume.text_fingerprint(texts)}
    trainer = Trainer(model, LanguageModelTask(tokens, model_cfg.block_size), train_cfg, checkpoint_config,
                      write_extra=lambda folder: tokenizer.save(folder / "tokenizer"))
    metrics = trainer.run()
    if dist.is_main:
        if metrics:
            print(f"final: val loss {metrics['val_loss']:.4f} (perplexity {metrics['val_ppl']:.2f}), "
                  f"train loss {metrics['train_loss']:.4f}; checkpoints in {train_cfg.out_dir}/best and /ckpt")
        if train_cfg.fsdp:  # the trained model is in shards, one per process
            print(f"samples: python sample.py --ckpt {train_cfg.out_dir}/best")
        else:
            print_samples(trainer.model, tokenizer, data_cfg, trainer.device)
    return metrics


if __name__ == "__main__":
    sys.exit(run_command(main))
