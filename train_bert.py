"""Pretrain a BERT on Shakespeare (or any text file) with masked-LM and next-sentence prediction.

    python train_bert.py --config small                     # CPU, under 8 minutes on 2 cores
    python train_bert.py --config long                      # CPU, about 27 minutes: 64-token pairs, then 256
    python train_bert.py --config toy                       # CPU, seconds: fill in masked palindrome digits
    python train_bert.py --config small --data my.txt       # blank lines separate documents
    python train_bert.py --config small --tokenizer bert-base-uncased
    python train_bert.py --config small --init_from PATH    # continue from a Hugging Face BERT folder
    torchrun --nproc_per_node=2 train_bert.py --config small    # DDP
    python train_bert.py --help                             # every flag, with its default

Reading path: this file builds the documents and a PairSampler (data/bert_corpus.py, data/bert_pairs.py),
a BertForPreTraining (minilm/model/bert.py) and a Trainer (minilm/training/trainer.py); the Trainer calls
PretrainingTask.loss (minilm/training/bert_task.py), which calls BertForPreTraining.forward.
docs/bert_pretraining.md explains the pairs, masking and metrics.
"""

import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from common.errors import CheckpointError, ConfigError, run_command
from data.bert_corpus import DataConfig, init_folder, prepare_data, tokenizer_name
from minilm import BertConfig, BertForPreTraining, from_pretrained
from minilm.hf import read_config
from minilm.training import resume
from minilm.training.bert_task import PretrainingTask
from minilm.training.checkpoint import load_checkpoint, saved_model
from minilm.training.cli import parse_args
from minilm.training.distributed import init_distributed, main_process_first, resolve_device
from minilm.training.metrics_log import MetricsLog
from minilm.training.presets import BERT_PRESETS as PRESETS
from minilm.training.run_dir import check_out_dir
from minilm.training.toy_tasks import ToyConfig, make_toy_task, train_toy_model
from minilm.training.trainer import Trainer, TrainConfig, seed_everything
from tokenizer import WordPieceTokenizer, load_tokenizer


# What --resume lets a data flag change: the text (it says so), the pairs' lengths, masking and phases.
DATA_MAY_CHANGE_ON_RESUME = {"data", "val_fraction", "max_seq_len", "short_seq_prob", "mlm_prob", "nsp_weight",
                             "init_from", "phase1_iters", "phase1_seq_len", "phase1_batch_size"}

DEMO_SENTENCES = [
    "To be, or not to be: that is the [MASK].",
    "O Romeo, Romeo! wherefore art thou [MASK]?",
    "Now is the winter of our [MASK].",
    "I will go to the [MASK], my good lord.",
    "What is your [MASK], sir?",
]


def build_model(model_cfg: BertConfig, data_cfg: DataConfig, tokenizer, resuming: bool) -> BertForPreTraining:
    """A fresh BertForPreTraining, or (--init_from, not when resuming) one loaded from a folder."""
    if data_cfg.init_from is None or resuming:  # a resumed run gets its weights from its checkpoint
        model_cfg.vocab_size = tokenizer.vocab_size
        model = BertForPreTraining(model_cfg)
    else:
        model = load_init(init_folder(data_cfg.init_from))
        if model.config.vocab_size != tokenizer.vocab_size:
            raise ConfigError(f"--init_from has a {model.config.vocab_size}-piece vocabulary but the tokenizer has "
                              f"{tokenizer.vocab_size}; add --tokenizer bert-base-uncased (or put the model's "
                              "vocab.txt in its folder)")
    if data_cfg.max_seq_len > model.config.block_size:
        raise ConfigError(f"--max_seq_len {data_cfg.max_seq_len} exceeds the model's block_size "
                          f"{model.config.block_size}; lower --max_seq_len or raise --block_size")
    return model


def load_init(folder: Path) -> BertForPreTraining:
    """--init_from: a train_bert.py checkpoint (config.json names its model_class) or a Hugging Face BERT folder."""
    config = read_config(folder)
    if "model_class" in config:
        if config["model_class"] != "BertForPreTraining" or "task" in config:
            raise CheckpointError(f"--init_from {folder} is a {config['model_class']} checkpoint; it accepts a "
                                  "train_bert.py checkpoint or a Hugging Face BERT folder")
        state_dict, _, _ = load_checkpoint(folder, with_train_state=False)
        model = saved_model(folder, config, state_dict)
        print(f"init: loaded the train_bert.py checkpoint {folder} (its config replaces the model flags)")
        return model.train()
    with warnings.catch_warnings(record=True) as caught:  # e.g. "no weights for mlm_head, nsp_head"
        warnings.simplefilter("always")
        model = from_pretrained(folder, BertForPreTraining).train()
    print(f"init: loaded {folder} (its config replaces the model flags)")
    for warning in caught:
        print(f"init: {warning.message}")
    return model


def plot_accuracies(metrics_path: Path, png_path: Path, baselines: dict[str, float],
                    phase1_iters: int = 0) -> None:
    """Validation MLM and NSP accuracy against the step, with the no-clue baselines as dashed lines
    and the end of phase 1 as a dotted one."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in MetricsLog(metrics_path).rows() if "val_mlm_acc" in row]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, label, color in (("mlm_acc", "MLM", "tab:blue"), ("nsp_acc", "NSP", "tab:orange")):
        ax.plot([r["step"] for r in rows], [r[f"val_{name}"] for r in rows], marker=".", color=color,
                label=f"val {label} accuracy")
        ax.axhline(baselines[name], color=color, linestyle="--", linewidth=1, label=f"{label} baseline")
    if phase1_iters:
        ax.axvline(phase1_iters, color="gray", linestyle=":", label="end of phase 1 (shorter pairs)")
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


@torch.no_grad()
def fill_mask_demo(model: BertForPreTraining, tokenizer, device: str, top_k: int = 5) -> None:
    """Print the top-k predictions for the [MASK] in each demo sentence."""
    model.eval()
    for sentence in DEMO_SENTENCES:
        before, after = sentence.split("[MASK]")
        ids = [tokenizer.cls_id, *tokenizer.encode(before), tokenizer.mask_id, *tokenizer.encode(after),
               tokenizer.sep_id]
        input_ids = torch.tensor([ids], device=device)  # (1, T)
        hidden, _ = model.bert(input_ids)
        logits = model.mlm_head(hidden[0, ids.index(tokenizer.mask_id)])  # (V,)
        probs, top = logits.float().softmax(-1).topk(top_k)
        guesses = ", ".join(f"{tokenizer.vocab[i]} {p:.0%}" for i, p in zip(top.tolist(), probs.tolist()))
        print(f"{sentence:48s} -> {guesses}")


def train_toy(model_cfg, train_cfg: TrainConfig, toy_cfg: ToyConfig) -> dict:
    """--toy_task: a toy Task (minilm/training/toy_tasks.py) instead of the text; a WordPiece tokenizer over
    its fixed vocabulary (the specials and the digits) goes into the checkpoint."""
    task = make_toy_task(toy_cfg, "BERT")
    return train_toy_model(BertForPreTraining, model_cfg, train_cfg, toy_cfg, task, WordPieceTokenizer(task.vocab))


def main(argv=None):
    configs = parse_args(PRESETS, {"model": BertConfig, "train": TrainConfig, "data": DataConfig, "toy": ToyConfig},
                         argv, default_preset="small", description=__doc__.split("\n")[0])
    model_cfg, train_cfg, data_cfg, toy_cfg = configs["model"], configs["train"], configs["data"], configs["toy"]
    check_out_dir(train_cfg.out_dir, train_cfg.resume, train_cfg.overwrite)  # before any slow preparation
    saved, tokenizer = None, None
    if train_cfg.resume:  # the model and the ids the run was built with (minilm/training/resume.py)
        saved = resume.saved_run_config(train_cfg.out_dir, "BertForPreTraining")
        model_cfg = resume.resumed_config(model_cfg, saved["model"], configs["given"], resume.MAY_CHANGE_ON_RESUME)
        data_cfg = resume.resumed_config(data_cfg, saved.get("data", {}), configs["given"],
                                         DATA_MAY_CHANGE_ON_RESUME)
        toy_cfg = resume.resumed_config(toy_cfg, saved.get("toy", {}), configs["given"], set())
        tokenizer = load_tokenizer(Path(train_cfg.out_dir) / "ckpt" / "tokenizer")
    if toy_cfg.toy_task is not None:
        return train_toy(model_cfg, train_cfg, toy_cfg)
    dist, _ = init_distributed(resolve_device(train_cfg.device))
    with main_process_first(dist):  # rank 0 trains the tokenizer and tokenizes first
        tokenizer, samplers, most_frequent_id, corpus_sha256 = prepare_data(data_cfg, tokenizer)
    if saved is not None:
        resume.note_changed_text(saved, corpus_sha256)
    if dist.is_main:
        sizes = {s: (samplers[s].docs.num_documents, len(samplers[s].docs.tokens)) for s in ("train", "val")}
        print("data: " + ", ".join(f"{s} {d} documents / {n:,} tokens" for s, (d, n) in sizes.items())
              + f"; {tokenizer_name(data_cfg)} with {tokenizer.vocab_size:,} pieces")

    seed_everything(train_cfg.seed)
    model = build_model(model_cfg, data_cfg, tokenizer, resuming=saved is not None)
    config = model.config
    if dist.is_main:
        print(f"model: {model.num_parameters() / 1e6:.2f}M parameters, {config.n_layer} layers, "
              f"{config.n_head} heads, {config.n_embd} wide; pairs of {data_cfg.max_seq_len} tokens")
        if data_cfg.phase1_iters:
            print(f"phase 1: steps 1-{data_cfg.phase1_iters} on pairs of {data_cfg.phase1_seq_len} tokens, "
                  f"{data_cfg.phase1_batch_size} a step")
    task = PretrainingTask(samplers, tokenizer, data_cfg.mlm_prob, data_cfg.nsp_weight, data_cfg.phase1_iters,
                           data_cfg.phase1_batch_size, train_cfg.batch_size)
    checkpoint_config = {"model_class": "BertForPreTraining", "model": config.to_dict(), "data": asdict(data_cfg),
                         "data_sha256": corpus_sha256}
    trainer = Trainer(model, task, train_cfg, checkpoint_config,
                      write_extra=lambda folder: tokenizer.save(folder / "tokenizer"))
    metrics = trainer.run()
    if dist.is_main:
        if metrics:
            base = task.baselines(train_cfg, most_frequent_id)
            token = tokenizer.vocab[most_frequent_id]
            ratio = f"{metrics['val_mlm_acc'] / base['mlm_acc']:.2f}" if base["mlm_acc"] else "n/a"
            print(f"final: val MLM accuracy {metrics['val_mlm_acc']:.1%} (always {token!r}: {base['mlm_acc']:.1%}, "
                  f"ratio {ratio}) | val NSP accuracy "
                  f"{metrics['val_nsp_acc']:.1%} (always the more common label: {base['nsp_acc']:.1%}); "
                  f"checkpoints in {train_cfg.out_dir}/best and /ckpt")
            plot_accuracies(trainer.metrics.path, Path(train_cfg.out_dir) / "accuracy.png", base,
                            data_cfg.phase1_iters)
        if not train_cfg.fsdp:  # with --fsdp the trained model is in shards, one per process
            fill_mask_demo(trainer.model, tokenizer, trainer.device)
    return metrics


if __name__ == "__main__":
    sys.exit(run_command(main))
