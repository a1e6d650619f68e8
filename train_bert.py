"""Pretrain a BERT (or RoBERTa, ALBERT, ELECTRA) on Shakespeare (or any text file) with masked tokens.

    python train_bert.py --config small                     # BERT, CPU, under 8 minutes on 2 cores
    python train_bert.py --config roberta-small             # RoBERTa: masked-LM only, on full sentences
    python train_bert.py --config albert-small              # ALBERT: factorised, shared, sentence order
    python train_bert.py --config electra-small             # ELECTRA: replaced-token detection
    python train_bert.py --config long                      # CPU, about 27 minutes: 64-token pairs, then 256
    python train_bert.py --config toy                       # CPU, seconds: fill in masked palindrome digits
    python train_bert.py --config small --data my.txt       # blank lines separate documents
    python train_bert.py --config small --tokenizer bert-base-uncased
    python train_bert.py --config small --init_from PATH    # continue from a Hugging Face BERT folder
    torchrun --nproc_per_node=2 train_bert.py --config small    # DDP
    python train_bert.py --config electra-small --help      # every flag of that run, with its default

Reading path: --objective (each preset sets one; minilm/training/objectives.py) picks the model class, the
sequences and the Task. This file builds the documents and a sampler (data/bert_corpus.py: NSP or SOP pairs
from data/bert_pairs.py, full sentences from data/full_sentences.py), the model (minilm/model/bert.py:
BertForPreTraining, BertForMaskedLM; minilm/model/electra.py: Electra) and a Trainer
(minilm/training/trainer.py); the Trainer calls the Task's loss (minilm/training/bert_task.py,
electra_task.py), which calls the model's forward. docs/bert_pretraining.md explains the pairs, masking and
metrics; docs/successors.md what RoBERTa, ALBERT and ELECTRA change.
"""

import argparse
import sys
import warnings
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch

from common.errors import CheckpointError, ConfigError, run_command
from data.bert_corpus import DataConfig, init_folder, prepare_data, tokenizer_name
from minilm import BertConfig, BertForPreTraining, from_pretrained
from minilm.hf import read_config
from minilm.model import Electra
from minilm.training import resume
from minilm.training.bert_task import Baseline
from minilm.training.checkpoint import MODEL_CLASSES, load_checkpoint, saved_model
from minilm.training.cli import parse_args
from minilm.training.distributed import init_distributed, main_process_first, resolve_device
from minilm.training.metrics_log import MetricsLog
from minilm.training.objectives import OBJECTIVES, make_task
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


def requested_objective(argv: list[str]) -> str:
    """The objective a command line asks for (--objective, else its --config preset's): it decides the model
    config's flags (ElectraConfig adds the generator's), so it is read before the full parse."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--config", default="small")
    peek.add_argument("--objective")
    known, _ = peek.parse_known_args(argv)
    preset_data = PRESETS.get(known.config, {}).get("data", {})
    objective = known.objective or preset_data.get("objective", DataConfig.objective)
    return objective if objective in OBJECTIVES else DataConfig.objective  # a bad name: the full parse says so


def resumed_model_config(model_cfg, saved: dict, given: set[str]):
    """--resume: the checkpoint's model config, in the checkpoint's class (the flags were parsed for the
    objective the command line asked for, which may be another), with the flags given checked against it."""
    config_cls = MODEL_CLASSES[saved["model_class"]][1]
    names = {f.name for f in fields(config_cls)}
    flags = {name: getattr(model_cfg, name) for name in given if name in names and hasattr(model_cfg, name)}
    try:
        current = config_cls.from_dict({**saved["model"], **flags})
    except ValueError as err:
        raise ConfigError(f"--resume: {err}") from None
    return resume.resumed_config(current, saved["model"], given, resume.MAY_CHANGE_ON_RESUME)


def build_model(model_cfg: BertConfig, data_cfg: DataConfig, tokenizer, resuming: bool) -> torch.nn.Module:
    """A fresh model of the objective's class, or (--init_from, not when resuming) one loaded from a folder."""
    model_cls = MODEL_CLASSES[OBJECTIVES[data_cfg.objective].model_class][0]
    if data_cfg.init_from is None or resuming:  # a resumed run gets its weights from its checkpoint
        try:  # the tokenizer decides the vocabulary and the padding id (RoBERTa's positions start after it)
            model_cfg = replace(model_cfg, vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_id)
        except ValueError as err:
            raise ConfigError(f"invalid model config: {err}") from None
        model = model_cls(model_cfg)
    else:
        model = load_init(init_folder(data_cfg.init_from, data_cfg.objective), model_cls)
        if model.config.vocab_size != tokenizer.vocab_size:
            raise ConfigError(f"--init_from has a {model.config.vocab_size}-piece vocabulary but the tokenizer has "
                              f"{tokenizer.vocab_size}; add --tokenizer bert-base-uncased (or put the model's "
                              "vocab.txt in its folder)")
    if data_cfg.max_seq_len > model.config.max_length:
        raise ConfigError(f"--max_seq_len {data_cfg.max_seq_len} exceeds the {model.config.max_length} positions "
                          f"of the model (block_size {model.config.block_size}); lower --max_seq_len or raise "
                          "--block_size")
    return model


def load_init(folder: Path, model_cls) -> torch.nn.Module:
    """--init_from: a train_bert.py checkpoint (init_folder checked that config.json names model_cls) or a
    Hugging Face BERT folder."""
    config = read_config(folder)
    if "model_class" in config:
        state_dict, _, _ = load_checkpoint(folder, with_train_state=False)
        model = saved_model(folder, config, state_dict)
        print(f"init: loaded the train_bert.py checkpoint {folder} (its config replaces the model flags)")
        return model.train()
    with warnings.catch_warnings(record=True) as caught:  # e.g. "no weights for mlm_head, nsp_head"
        warnings.simplefilter("always")
        model = from_pretrained(folder, model_cls).train()
    print(f"init: loaded {folder} (its config replaces the model flags)")
    for warning in caught:
        print(f"init: {warning.message}")
    return model


def plot_accuracies(metrics_path: Path, png_path: Path, accuracies: list[tuple[str, str]],
                    baselines: dict[str, Baseline], phase1_iters: int = 0) -> None:
    """Validation accuracies against the step, each with its no-clue baseline dashed (a line, or a curve when
    it moves during training), and the end of phase 1 as a dotted line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in MetricsLog(metrics_path).rows() if "val_mlm_acc" in row]
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for (name, label), color in zip(accuracies, ("tab:blue", "tab:orange", "tab:green")):
        ax.plot(steps, [r[f"val_{name}"] for r in rows], marker=".", color=color, label=f"val {label} accuracy")
        base = baselines[name]
        if base.curve is not None:
            ax.plot(steps, [r[f"val_{base.curve}"] for r in rows], color=color, linestyle="--", linewidth=1,
                    label=f"{label} baseline ({base.means})")
        else:
            ax.axhline(base.value, color=color, linestyle="--", linewidth=1, label=f"{label} baseline ({base.means})")
    if phase1_iters:
        ax.axvline(phase1_iters, color="gray", linestyle=":", label="end of phase 1 (shorter pairs)")
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def final_line(metrics: dict, accuracies: list[tuple[str, str]], baselines: dict[str, Baseline], out_dir) -> str:
    """final: each validation accuracy beside its baseline (and, for MLM, their ratio)."""
    parts = []
    for name, label in accuracies:
        value, base = metrics[f"val_{name}"], baselines[name]
        ratio = f", ratio {value / base.value:.2f}" if name == "mlm_acc" and base.value else ""
        parts.append(f"val {label} accuracy {value:.1%} ({base.means}: {base.value:.1%}{ratio})")
    return f"final: {' | '.join(parts)}; checkpoints in {out_dir}/best and /ckpt"


@torch.no_grad()
def fill_mask_demo(model, tokenizer, device: str, top_k: int = 5) -> None:
    """Print the top-k predictions for the [MASK] in each demo sentence (ELECTRA's: its generator's)."""
    masked_lm = model.generator if isinstance(model, Electra) else model  # a Bert and an mlm_head
    masked_lm.eval()
    for sentence in DEMO_SENTENCES:
        before, after = sentence.split("[MASK]")
        ids = [tokenizer.cls_id, *tokenizer.encode(before), tokenizer.mask_id, *tokenizer.encode(after),
               tokenizer.sep_id]
        input_ids = torch.tensor([ids], device=device)  # (1, T)
        hidden, _ = masked_lm.bert(input_ids)
        logits = masked_lm.mlm_head(hidden[0, ids.index(tokenizer.mask_id)])  # (V,)
        probs, top = logits.float().softmax(-1).topk(top_k)
        guesses = ", ".join(f"{tokenizer.vocab[i]} {p:.0%}" for i, p in zip(top.tolist(), probs.tolist()))
        print(f"{sentence:48s} -> {guesses}")


def bert_parameters_of_shape(config: BertConfig) -> int:
    """What ALBERT saves: the parameters of a BertForPreTraining of its shape without factorised embeddings and
    shared blocks (built on the meta device: shapes only, no memory)."""
    with torch.device("meta"):
        return BertForPreTraining(replace(config, embedding_size=None, share_layers=False)).num_parameters()


def train_toy(model_cfg, train_cfg: TrainConfig, toy_cfg: ToyConfig) -> dict:
    """--toy_task: a toy Task (minilm/training/toy_tasks.py) instead of the text; a WordPiece tokenizer over
    its fixed vocabulary (the specials and the digits) goes into the checkpoint."""
    task = make_toy_task(toy_cfg, "BERT")
    return train_toy_model(BertForPreTraining, model_cfg, train_cfg, toy_cfg, task, WordPieceTokenizer(task.vocab))


def resumed_configs(configs: dict, requested: str) -> tuple:
    """--resume: (checkpoint config, model, train, data and toy configs, tokenizer) of the run in out_dir.
    The model, data and toy configs and the tokenizer are the ones the run was built with
    (minilm/training/resume.py); the training settings not given on the command line are the run's too,
    so that `--resume` alone finishes the run as it was started, whichever preset that was."""
    given, train_cfg = configs["given"], configs["train"]
    saved = resume.saved_run_config(train_cfg.out_dir, tuple(o.model_class for o in OBJECTIVES.values()))
    data_cfg = resume.resumed_config(configs["data"], saved.get("data", {}), given, DATA_MAY_CHANGE_ON_RESUME)
    if "config" in given and requested != data_cfg.objective:
        raise ConfigError(f"--config {configs['preset']} trains --objective {requested}, but {train_cfg.out_dir} "
                          f"holds a run of --objective {data_cfg.objective}; drop --config to resume it, or choose "
                          "another --out_dir")
    kept = {name: value for name, value in saved.get("train", {}).items()
            if name not in given and name not in ("resume", "overwrite")}
    train_cfg = replace(train_cfg, **kept)
    model_cfg = resumed_model_config(configs["model"], saved, given)
    toy_cfg = resume.resumed_config(configs["toy"], saved.get("toy", {}), given, set())
    tokenizer = load_tokenizer(resume.checkpoint_to_resume(train_cfg.out_dir) / "tokenizer")
    return saved, model_cfg, train_cfg, data_cfg, toy_cfg, tokenizer


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    requested = requested_objective(argv)
    config_cls = MODEL_CLASSES[OBJECTIVES[requested].model_class][1]
    configs = parse_args(PRESETS, {"model": config_cls, "train": TrainConfig, "data": DataConfig, "toy": ToyConfig},
                         argv, default_preset="small", description=__doc__.split("\n")[0])
    model_cfg, train_cfg, data_cfg, toy_cfg = configs["model"], configs["train"], configs["data"], configs["toy"]
    check_out_dir(train_cfg.out_dir, train_cfg.resume, train_cfg.overwrite,  # before any slow preparation
                  {f"--data {data_cfg.data}": data_cfg.data, f"--init_from {data_cfg.init_from}": data_cfg.init_from},
                  "train_bert.py")
    saved, tokenizer = None, None
    if train_cfg.resume:
        saved, model_cfg, train_cfg, data_cfg, toy_cfg, tokenizer = resumed_configs(configs, requested)
    if toy_cfg.toy_task is not None:
        return train_toy(model_cfg, train_cfg, toy_cfg)
    objective = OBJECTIVES[data_cfg.objective]
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
        sequences = {"nsp": "NSP pairs", "sop": "sentence-order pairs", "full": "full sentences"}[objective.sequences]
        print(f"model: {objective.paper} (--objective {data_cfg.objective}): {objective.model_class}, "
              f"{model.num_parameters() / 1e6:.2f}M parameters, {config.n_layer} layers, {config.n_head} heads, "
              f"{config.n_embd} wide; {sequences} of {data_cfg.max_seq_len} tokens")
        if isinstance(model, BertForPreTraining) and (config.share_layers or config.embedding_size is not None):
            print(f"       a BERT of the same shape (E = H, a block per layer): "
                  f"{bert_parameters_of_shape(config) / 1e6:.2f}M parameters")
        if data_cfg.phase1_iters:
            print(f"phase 1: steps 1-{data_cfg.phase1_iters} on sequences of {data_cfg.phase1_seq_len} tokens, "
                  f"{data_cfg.phase1_batch_size} a step")
    task = make_task(data_cfg.objective, samplers, tokenizer, data_cfg, train_cfg.batch_size,
                     getattr(config, "rtd_weight", 0.0))
    checkpoint_config = {"model_class": objective.model_class, "model": config.to_dict(), "data": asdict(data_cfg),
                         "data_sha256": corpus_sha256}
    trainer = Trainer(model, task, train_cfg, checkpoint_config,
                      write_extra=lambda folder: tokenizer.save(folder / "tokenizer"))
    metrics = trainer.run()
    if dist.is_main:
        if metrics:
            baselines = task.baselines(train_cfg, most_frequent_id, tokenizer.vocab[most_frequent_id], metrics)
            print(final_line(metrics, task.accuracies, baselines, train_cfg.out_dir))
            plot_accuracies(trainer.metrics.path, Path(train_cfg.out_dir) / "accuracy.png", task.accuracies,
                            baselines, data_cfg.phase1_iters)
        if not train_cfg.fsdp:  # with --fsdp the trained model is in shards, one per process
            fill_mask_demo(trainer.model, tokenizer, trainer.device)
    return metrics


if __name__ == "__main__":
    sys.exit(run_command(main))
