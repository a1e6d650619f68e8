"""`python -m minilm.viz figures [--out docs/img] [--gpt DIR]`: every picture of docs/img, drawn again.

What it draws with (nothing is downloaded but PyPI packages, see data/assets.py):
  - a GPT of train_gpt.py's `small` preset, trained here for --gpt_steps steps (about 2 minutes on 2
    cores) unless --gpt names a trained one; its attention on a line of a held-out play;
  - the real all-MiniLM-L6-v2 and its uncased vocabulary, on a sentence pair;
  - GPT-2's real BPE ranks; the presets of minilm/training/presets.py.
--out is marked as this command's (written_by.json, common/output_guard.py), so drawing into it again needs
no flag; a folder of other files needs --overwrite, and --out may never hold or lie inside --gpt.
A command (it fetches assets and runs train_gpt.py), so tests/test_layering.py counts it with the others;
the drawing itself is in model_figures.py, training_figures.py and tokenizer_figures.py.
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from common.atomic import write_file_atomic
from common.errors import ConfigError
from common.output_guard import guard_output, mark_output
from data.assets import base_model_folder, cache_dir
from data.shakespeare import shakespeare_splits
from data.tokenizers import named_tokenizer
from minilm.finetune.checkpoints import load_base
from minilm.hf import from_pretrained
from minilm.model import Bert
from minilm.training.checkpoint import load_checkpoint
from minilm.training.presets import BERT_PRESETS, GPT_PRESETS
from tokenizer import WordPieceTokenizer

from . import llama_figures, model_figures, tokenizer_figures, training_figures

REPO = Path(__file__).resolve().parents[2]
SENTENCE_PAIR = ("The cat sat on the mat.", "It was very tired.")
BPE_WORD, WORDPIECE_WORD = " tokenization", "unbelievably"
COMMAND = "python -m minilm.viz figures"


def draw_all(out: Path, gpt_run: Path, minilm_folder: Path) -> list[Path]:
    """Every figure into out; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    gpt, gpt_tokenizer = load_gpt_run(gpt_run)
    bert = from_pretrained(minilm_folder, Bert)
    wordpiece = WordPieceTokenizer.from_vocab_file(minilm_folder / "vocab.txt", lowercase=True)
    written = []

    def target(name: str) -> Path:
        written.append(out / name)
        return out / name

    model_figures.plot_masks(target("attention_masks.png"))
    line = held_out_line()[:gpt.config.block_size]  # a short line; cropped for a model of shorter context
    gpt_ids = torch.tensor([gpt_tokenizer.encode(line)])  # (1, T)
    gpt_maps = gpt.attention_maps(gpt_ids)
    chars = [repr(c)[1:-1] if c != " " else "␣" for c in line]
    model_figures.plot_heads_of_layer(target("gpt_small_heads.png"), gpt_maps, chars, len(gpt_maps) - 1,
                                      f"GPT small, last layer, on a held-out line: {line!r}")
    model_figures.plot_head_through_layers(target("gpt_small_head_layers.png"), gpt_maps, chars, 0, "GPT small")
    encoded = wordpiece.encode_plus(*SENTENCE_PAIR)
    pair_ids, types = torch.tensor([encoded["input_ids"]]), torch.tensor([encoded["token_type_ids"]])
    bert_maps = bert.attention_maps(pair_ids, token_type_ids=types)
    pieces = [wordpiece.vocab[i] for i in encoded["input_ids"]]
    model_figures.plot_heads_of_layer(target("minilm_heads.png"), bert_maps, pieces, 2,
                                      "all-MiniLM-L6-v2, layer 2, on a sentence pair")
    model_figures.plot_head_through_layers(target("minilm_head_layers.png"), bert_maps, pieces, 5, "all-MiniLM-L6-v2")
    model_figures.plot_position_similarity(target("position_similarity.png"), {
        "GPT small (wpe)": gpt.wpe.weight.detach(), "all-MiniLM-L6-v2": bert.embeddings.position.weight.detach()})
    model_figures.plot_lora(target("lora.png"))
    model_figures.plot_gelu(target("gelu.png"))
    for name, draw in llama_figures.FIGURES.items():  # RoPE, GQA, SwiGLU, RMSNorm (docs/llama.md)
        draw(target(name))
    training_figures.plot_schedules(target("lr_schedules.png"), {"train_gpt.py": GPT_PRESETS,
                                                                 "train_bert.py": BERT_PRESETS},
                                    gpt_run / "metrics.jsonl", f"train_gpt.py --config small, {gpt_run.name}")
    write_file_atomic(target("gpt_small_metrics.png"), lambda tmp: shutil.copyfile(gpt_run / "metrics.png", tmp))
    draw_masking(target("bert_masking.png"), wordpiece)
    tokenizer_figures.plot_bpe_steps(target("bpe_merges.png"), named_tokenizer("gpt2"), BPE_WORD)
    tokenizer_figures.plot_wordpiece(target("wordpiece.png"), wordpiece, WORDPIECE_WORD)
    return written


def held_out_line() -> str:
    """A short speech line of a held-out play (the validation split of train_gpt.py's corpus)."""
    _, val = shakespeare_splits(0.1)
    return next(line for line in val.splitlines() if 22 <= len(line) <= 30 and not line.isupper())


def draw_masking(path: Path, wordpiece) -> None:
    """mask_tokens on [CLS] A [SEP] B [SEP] from two lines of a held-out play; the seed is the first that
    shows all three fates (mask, random, unchanged), so the picture has each kind."""
    _, val = shakespeare_splits(0.1)
    lines = [line for line in val.splitlines() if len(line) > 30 and not line.isupper()]
    encoded = wordpiece.encode_plus(lines[0], lines[1])
    input_ids = torch.tensor([encoded["input_ids"]])  # (1, T)
    special = torch.tensor([[i in (wordpiece.cls_id, wordpiece.sep_id) for i in encoded["input_ids"]]])
    for seed in range(1000):
        masked, _, fates = training_figures.masking_fates(input_ids, special, wordpiece.mask_id,
                                                          wordpiece.vocab_size, seed)
        if {"[MASK]", "random", "unchanged"} <= set(fates):
            break
    pieces = [wordpiece.vocab[i] for i in input_ids[0].tolist()]
    new_pieces = [wordpiece.vocab[i] for i in masked[0].tolist()]
    training_figures.plot_masking(path, pieces, new_pieces, fates)


def load_gpt_run(run: Path):
    base = load_base(run / "best")
    return base.backbone.eval(), base.tokenizer


def train_small_gpt(run: Path, steps: int) -> Path:
    """train_gpt.py --config small for `steps` steps into run (kept, and reused when it is complete)."""
    if (run / "best").is_dir() and (run / "metrics.png").is_file():
        _, config, _ = load_checkpoint(run / "ckpt", with_train_state=False)
        if config["step"] == steps:
            return run
    command = [sys.executable, str(REPO / "train_gpt.py"), "--config", "small", "--max_iters", str(steps),
               "--eval_interval", str(max(1, steps // 8)), "--log_interval", str(max(1, steps // 80)),
               "--out_dir", str(run), "--num_samples", "0",
               "--progress", "false", "--overwrite"]
    print("training:", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, cwd=REPO)
    return run


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # `error: <message>`, exit 2, through run_command
        raise ConfigError(message)


def main(argv) -> None:
    parser = _Parser(prog="python -m minilm.viz figures", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "img"), help="where the pictures go (docs/img)")
    parser.add_argument("--gpt", default=None, help="a train_gpt.py --config small out_dir to draw "
                                                    "(default: train one)")
    parser.add_argument("--gpt_steps", type=int, default=800, help="steps of the GPT trained without --gpt")
    parser.add_argument("--overwrite", action="store_true", help="draw into a folder of other files (never one "
                        "that holds --gpt); a folder this command drew into before needs no flag")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    gpt_run = Path(args.gpt) if args.gpt else cache_dir() / "figures" / "gpt-small"
    gpt_label = f"--gpt {gpt_run}" if args.gpt else f"the GPT it trains in {gpt_run}"
    mark_output(guard_output(args.out, "--out", COMMAND, inputs={gpt_label: gpt_run}, overwrite=args.overwrite),
                COMMAND)
    if not args.gpt:
        train_small_gpt(gpt_run, args.gpt_steps)
    for path in draw_all(Path(args.out), gpt_run, base_model_folder("minilm-l6")):
        print(f"wrote {path}")
    print(f"figures: {time.perf_counter() - start:.0f} s")
