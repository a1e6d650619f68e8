"""Pretrain a BERT on Shakespeare (or any text file) with masked-LM and next-sentence prediction.

    python train_bert.py --config small                     # CPU, under 8 minutes on 2 cores
    python train_bert.py --config long                      # CPU, about 27 minutes: 64-token pairs, then 256
    python train_bert.py --config small --data my.txt       # blank lines separate documents
    python train_bert.py --config small --tokenizer bert-base-uncased
    python train_bert.py --config small --init_from PATH    # continue from a Hugging Face BERT folder
    torchrun --nproc_per_node=2 train_bert.py --config small    # DDP
    python train_bert.py --help                             # every flag, with its default

Reading path: this file builds the documents and a PairSampler (data/bert_pairs.py), a BertForPreTraining
(minilm/bert.py) and a Trainer (minilm/trainer.py); the Trainer calls PretrainingTask.loss below, which
calls BertForPreTraining.forward. docs/bert_pretraining.md explains the pairs, masking and metrics.
"""

import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from data.assets import cache_dir
from data.bert_pairs import (PairSampler, cached_tokenize_documents, mask_pairs, read_documents,
                             split_documents_by_tail, split_documents_evenly)
from data.prepare import fingerprint_tokenizer
from data.tokenizer_cache import cached_tokenizer
from minilm import BertConfig, BertForPreTraining
from minilm.cli import parse_args
from minilm.distributed import init_distributed, main_process_first, resolve_device
from minilm.losses import IGNORE_INDEX
from minilm.metrics_log import MetricsLog
from minilm.trainer import Task, Trainer, TrainConfig, seed_everything, to_device
from tokenizer import WordPieceTokenizer


@dataclass
class DataConfig:
    data: str | None = field(default=None, metadata={"help": "a UTF-8 text file, blank lines between documents "
                                                             "(default: Shakespeare's plays, one per document)"})
    tokenizer: str = field(default="wordpiece", metadata={"choices": ("wordpiece", "bert-base-uncased"),
                                                          "help": "wordpiece: trained on the corpus"})
    tokenizer_vocab_size: int = field(default=4096, metadata={"help": "pieces in the trained WordPiece vocabulary"})
    val_fraction: float = field(default=0.1, metadata={"help": "held out: the tail of each play, or whole "
                                                               "documents of --data"})
    max_seq_len: int = field(default=64, metadata={"help": "tokens per pair, [CLS] and [SEP]s included"})
    short_seq_prob: float = field(default=0.1, metadata={"help": "share of pairs with a random shorter length"})
    mlm_prob: float = field(default=0.15, metadata={"help": "share of tokens chosen for masked-LM"})
    nsp_weight: float = field(default=1.0, metadata={"help": "training loss = mlm_loss + nsp_weight * nsp_loss "
                                                             "(BERT: 1)"})
    init_from: str | None = field(default=None, metadata={"help": "a Hugging Face BERT folder to continue from"})
    # BERT's two phases (90% of its steps on 128-token pairs, then 512): short pairs are cheap and NSP
    # leaves chance on them sooner. Validation always uses max_seq_len.
    phase1_iters: int = field(default=0, metadata={"help": "the first N training steps draw shorter pairs "
                                                            "(0: every step uses max_seq_len)"})
    phase1_seq_len: int = field(default=64, metadata={"help": "tokens per pair during phase1_iters"})
    phase1_batch_size: int = field(default=64, metadata={"help": "pairs per step during phase1_iters"})

    def __post_init__(self):
        for name in ("val_fraction", "mlm_prob"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {getattr(self, name)}")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            raise ValueError(f"short_seq_prob must be in [0, 1], got {self.short_seq_prob}")
        for name in ("max_seq_len", "phase1_seq_len"):
            if getattr(self, name) < 5:
                raise ValueError(f"{name} must be at least 5 ([CLS] A [SEP] B [SEP]), got {getattr(self, name)}")
        if self.phase1_iters < 0 or self.phase1_batch_size < 1:
            raise ValueError(f"phase1_iters must be >= 0 and phase1_batch_size >= 1, got {self.phase1_iters} "
                             f"and {self.phase1_batch_size}")
        if self.phase1_iters and self.phase1_seq_len > self.max_seq_len:
            raise ValueError(f"phase1_seq_len ({self.phase1_seq_len}) is for shorter pairs than max_seq_len "
                             f"({self.max_seq_len}); lower --phase1_seq_len")


# init_std 0.1, not BERT's 0.02 (sized for 768 wide) nor 0.05: at 0.05 the [CLS] state hardly depends on the
# input (its attention output, an average through two std-0.05 matrices, is ~0.08 of the residual), so the
# NSP head has nothing to read and NSP stays at chance; see docs/bert_pretraining.md.
_SMALL_MODEL = dict(BertConfig.PRESETS["small"], block_size=128, dropout=0.0, attn_dropout=0.0, attn_impl="sdpa",
                    init_std=0.1)
_SMALL_TRAIN = dict(batch_size=32, lr=2e-3, weight_decay=0.01, beta2=0.99, eval_iters=20,
                    metric="val_nsp_acc", metric_goal="max")
PRESETS = {
    # Most learning per CPU second: 2 layers x 128, pairs of 128 tokens (see docs/bert_pretraining.md).
    "small": {
        "model": _SMALL_MODEL,
        "train": dict(_SMALL_TRAIN, out_dir="out/bert-small", max_iters=2400, warmup_iters=100,
                      eval_interval=250, log_interval=50),
        "data": dict(max_seq_len=128),
    },
    # The same model, BERT's two phases: 2,500 steps on pairs of 64 tokens (cheap steps; NSP leaves chance
    # sooner), then pairs of 256 (twice the NSP evidence of 128) to step 7,800; bf16 autocast, ~15% faster
    # on this CPU (AVX512-BF16); the written-out attention, as fast as sdpa at 256 tokens and faster at 64.
    # About 27 minutes on 2 cores; see docs/bert_pretraining.md. Evaluated on 50 batches (1,600 pairs of
    # 256 tokens) for a steadier NSP figure.
    "long": {
        "model": dict(_SMALL_MODEL, block_size=256, attn_impl="manual"),
        "train": dict(_SMALL_TRAIN, out_dir="out/bert-long", max_iters=7800, warmup_iters=200,
                      eval_interval=500, eval_iters=50, log_interval=100, dtype="bfloat16"),
        "data": dict(max_seq_len=256, phase1_iters=2500, phase1_seq_len=64, phase1_batch_size=64),
    },
    # BERT-base with the real uncased vocabulary, 128-token pairs: a GPU run.
    "bert-base": {
        "model": dict(BertConfig.PRESETS["bert-base"]),
        "train": dict(out_dir="out/bert-base", max_iters=20000, batch_size=128, lr=1e-4, warmup_iters=1000,
                      eval_interval=1000, weight_decay=0.01, metric="val_nsp_acc", metric_goal="max"),
        "data": dict(tokenizer="bert-base-uncased", max_seq_len=128),
    },
}

DEMO_SENTENCES = [
    "To be, or not to be: that is the [MASK].",
    "O Romeo, Romeo! wherefore art thou [MASK]?",
    "Now is the winter of our [MASK].",
    "I will go to the [MASK], my good lord.",
    "What is your [MASK], sir?",
]


class PretrainingTask(Task):
    """Masked-LM + next-sentence prediction on pairs drawn afresh (and masked afresh) for every batch.

    samplers has one PairSampler per split, and "phase1" (shorter pairs) when phase1_iters > 0: the first
    phase1_iters training steps draw phase1_batch_size of those for every batch_size pairs of a later step."""

    def __init__(self, samplers: dict[str, PairSampler], tokenizer, mlm_prob: float, nsp_weight: float = 1.0,
                 phase1_iters: int = 0, phase1_batch_size: int = 1, batch_size: int = 1):
        self.samplers, self.tokenizer, self.mlm_prob, self.nsp_weight = samplers, tokenizer, mlm_prob, nsp_weight
        self.phase1_iters, self.phase1_batch_size, self.batch_size = phase1_iters, phase1_batch_size, batch_size
        self.step = 0  # the trainer's step, set by on_step_start
        self.eval_batches: dict[str, list] = {}  # split -> the same batches at every evaluation

    def on_step_start(self, step):
        self.step = step

    def get_batch(self, split, batch_size, generator):
        if split == "train" and self.step < self.phase1_iters:
            # batch_size may be several processes' or micro-batches' worth: scale it, keep the multiple.
            return self.draw(self.samplers["phase1"], batch_size * self.phase1_batch_size // self.batch_size,
                             generator)
        return self.draw(self.samplers[split], batch_size, generator)

    def draw(self, sampler: PairSampler, batch_size: int, generator) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        pairs = sampler.sample(batch_size, generator)
        return mask_pairs(pairs, tok.mask_id, tok.vocab_size, self.mlm_prob, generator, tok.cls_id, tok.sep_id)

    def loss(self, model, batch):
        out = model(**batch)  # the batch keys are forward's arguments
        return out.mlm_loss + self.nsp_weight * out.nsp_loss

    def count_tokens(self, batch):
        return int(batch["attention_mask"].sum())

    def fixed_batches(self, split: str, cfg: TrainConfig) -> list[dict[str, torch.Tensor]]:
        if split not in self.eval_batches:
            generator = torch.Generator().manual_seed(0)
            self.eval_batches[split] = [self.draw(self.samplers[split], cfg.batch_size, generator)
                                        for _ in range(cfg.eval_iters)]
        return self.eval_batches[split]

    def evaluate(self, model, cfg, device):
        """Per split: MLM loss and accuracy over all masked positions, NSP loss and accuracy over all pairs."""
        metrics = {}
        for split in self.splits:
            sums = dict(mlm_loss=0.0, mlm_correct=0, n_masked=0, nsp_loss=0.0, nsp_correct=0, n_pairs=0)
            for batch in self.fixed_batches(split, cfg):
                batch = to_device(batch, device)
                out = model(**batch)
                labels = batch["mlm_labels"][batch["mlm_labels"] != IGNORE_INDEX]  # (N,) as out.mlm_logits
                sums["mlm_loss"] += out.mlm_loss.item() * len(labels)
                sums["mlm_correct"] += (out.mlm_logits.argmax(-1) == labels).sum().item()
                sums["n_masked"] += len(labels)
                sums["nsp_loss"] += out.nsp_loss.item() * len(batch["nsp_labels"])
                sums["nsp_correct"] += (out.nsp_logits.argmax(-1) == batch["nsp_labels"]).sum().item()
                sums["n_pairs"] += len(batch["nsp_labels"])
            metrics[f"{split}_mlm_loss"] = sums["mlm_loss"] / sums["n_masked"]
            metrics[f"{split}_nsp_loss"] = sums["nsp_loss"] / sums["n_pairs"]
            metrics[f"{split}_loss"] = metrics[f"{split}_mlm_loss"] + metrics[f"{split}_nsp_loss"]
            metrics[f"{split}_mlm_acc"] = sums["mlm_correct"] / sums["n_masked"]
            metrics[f"{split}_nsp_acc"] = sums["nsp_correct"] / sums["n_pairs"]
        return metrics

    def baselines(self, cfg: TrainConfig, most_frequent_id: int) -> dict[str, float]:
        """What a model without a clue scores on the validation batches: always the most frequent
        training token for MLM, always the more common label for NSP."""
        batches = self.fixed_batches("val", cfg)
        labels = torch.cat([b["mlm_labels"][b["mlm_labels"] != IGNORE_INDEX] for b in batches])
        nsp = torch.cat([b["nsp_labels"] for b in batches]).float().mean().item()
        return {"mlm_acc": (labels == most_frequent_id).float().mean().item(), "nsp_acc": max(nsp, 1 - nsp)}


def load_documents(data_cfg: DataConfig) -> dict[str, list[str]]:
    """Training and validation documents: the tail of each play, or whole documents of --data."""
    if data_cfg.data is None:
        from data.shakespeare import load_plays
        train, val = split_documents_by_tail(list(load_plays().values()), data_cfg.val_fraction)
    else:
        train, val = split_documents_evenly(read_documents(data_cfg.data), data_cfg.val_fraction)
    return {"train": train, "val": val}


def tokenizer_name(data_cfg: DataConfig) -> str:
    if data_cfg.init_from and (Path(data_cfg.init_from) / "vocab.txt").is_file():
        return f"the vocab.txt of {data_cfg.init_from}"
    return f"{data_cfg.tokenizer} tokenizer"


def build_tokenizer(data_cfg: DataConfig, train_documents: list[str]):
    """The tokenizer: the --init_from folder's vocab.txt if it has one, else --tokenizer."""
    if data_cfg.init_from and (Path(data_cfg.init_from) / "vocab.txt").is_file():
        return WordPieceTokenizer.from_vocab_file(Path(data_cfg.init_from) / "vocab.txt", lowercase=True)
    return cached_tokenizer(data_cfg.tokenizer, "\n".join(train_documents), data_cfg.tokenizer_vocab_size)


def prepare_data(data_cfg: DataConfig):
    """Tokenizer, one PairSampler per split (and "phase1": shorter training pairs), the most frequent
    training token."""
    documents = load_documents(data_cfg)
    tokenizer = build_tokenizer(data_cfg, documents["train"])
    fingerprint = fingerprint_tokenizer(tokenizer)
    samplers = {}
    for split, docs in documents.items():
        tokenized = cached_tokenize_documents(docs, tokenizer, fingerprint, cache_dir() / "bert_documents")
        samplers[split] = PairSampler(tokenized, data_cfg.max_seq_len, tokenizer.cls_id, tokenizer.sep_id,
                                      tokenizer.pad_id, data_cfg.short_seq_prob, split=split)
    if data_cfg.phase1_iters:
        samplers["phase1"] = PairSampler(samplers["train"].docs, data_cfg.phase1_seq_len, tokenizer.cls_id,
                                         tokenizer.sep_id, tokenizer.pad_id, data_cfg.short_seq_prob, split="train")
    most_frequent_id = int(np.bincount(samplers["train"].docs.tokens).argmax())
    return tokenizer, samplers, most_frequent_id


def build_model(model_cfg: BertConfig, data_cfg: DataConfig, tokenizer) -> BertForPreTraining:
    if data_cfg.init_from is None:
        model_cfg.vocab_size = tokenizer.vocab_size
        model = BertForPreTraining(model_cfg)
    else:
        with warnings.catch_warnings(record=True) as caught:  # e.g. "no weights for mlm_head, nsp_head"
            warnings.simplefilter("always")
            model = BertForPreTraining.from_pretrained(data_cfg.init_from).train()
        print(f"init: loaded {data_cfg.init_from} (its config replaces the model flags)")
        for warning in caught:
            print(f"init: {warning.message}")
        if model.config.vocab_size != tokenizer.vocab_size:
            raise ValueError(f"--init_from has a {model.config.vocab_size}-piece vocabulary but the tokenizer has "
                             f"{tokenizer.vocab_size}; add --tokenizer bert-base-uncased (or put the model's "
                             "vocab.txt in its folder)")
    if data_cfg.max_seq_len > model.config.block_size:
        raise ValueError(f"--max_seq_len {data_cfg.max_seq_len} exceeds the model's block_size "
                         f"{model.config.block_size}; lower --max_seq_len or raise --block_size")
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


def main(argv=None):
    configs = parse_args(PRESETS, {"model": BertConfig, "train": TrainConfig, "data": DataConfig}, argv,
                         default_preset="small", description=__doc__.split("\n")[0])
    model_cfg, train_cfg, data_cfg = configs["model"], configs["train"], configs["data"]
    dist, _ = init_distributed(resolve_device(train_cfg.device))
    with main_process_first(dist):  # rank 0 trains the tokenizer and tokenizes first
        tokenizer, samplers, most_frequent_id = prepare_data(data_cfg)
    if dist.is_main:
        sizes = {s: (samplers[s].docs.num_documents, len(samplers[s].docs.tokens)) for s in ("train", "val")}
        print("data: " + ", ".join(f"{s} {d} documents / {n:,} tokens" for s, (d, n) in sizes.items())
              + f"; {tokenizer_name(data_cfg)} with {tokenizer.vocab_size:,} pieces")

    seed_everything(train_cfg.seed)
    model = build_model(model_cfg, data_cfg, tokenizer)
    config = model.config
    if dist.is_main:
        print(f"model: {model.num_parameters() / 1e6:.2f}M parameters, {config.n_layer} layers, "
              f"{config.n_head} heads, {config.n_embd} wide; pairs of {data_cfg.max_seq_len} tokens")
        if data_cfg.phase1_iters:
            print(f"phase 1: steps 1-{data_cfg.phase1_iters} on pairs of {data_cfg.phase1_seq_len} tokens, "
                  f"{data_cfg.phase1_batch_size} a step")
    task = PretrainingTask(samplers, tokenizer, data_cfg.mlm_prob, data_cfg.nsp_weight, data_cfg.phase1_iters,
                           data_cfg.phase1_batch_size, train_cfg.batch_size)
    checkpoint_config = {"model_class": "BertForPreTraining", "model": config.to_dict(), "data": asdict(data_cfg)}
    trainer = Trainer(model, task, train_cfg, checkpoint_config,
                      write_extra=lambda folder: tokenizer.save(folder / "tokenizer"))
    metrics = trainer.run()
    if dist.is_main:
        if metrics:
            base = task.baselines(train_cfg, most_frequent_id)
            token = tokenizer.vocab[most_frequent_id]
            print(f"final: val MLM accuracy {metrics['val_mlm_acc']:.1%} (always {token!r}: {base['mlm_acc']:.1%}, "
                  f"ratio {metrics['val_mlm_acc'] / base['mlm_acc']:.2f}) | val NSP accuracy "
                  f"{metrics['val_nsp_acc']:.1%} (always the more common label: {base['nsp_acc']:.1%}); "
                  f"checkpoints in {train_cfg.out_dir}/best and /ckpt")
            plot_accuracies(trainer.metrics.path, Path(train_cfg.out_dir) / "accuracy.png", base,
                            data_cfg.phase1_iters)
        fill_mask_demo(trainer.model, tokenizer, trainer.device)
    return metrics


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
