"""Training quality, not speed: nanoGPT's CPU "baby" run, by train_gpt.py and by a reference.

minilm: `train_gpt.py --config baby --data FILE --seed S`, unchanged. Reference: transformers'
GPT2LMHeadModel of the same shape (with biases and tanh GELU, like the baby preset), trained by the
plain loop nanoGPT's train.py writes out (AdamW with decay on matrices, betas 0.9/0.99, linear warm-up
then cosine to lr/10, clipping at 1), on the same train/val split with the same batch sampler and seed.
Both are scored on the whole validation split (non-overlapping windows), which is steadier than a
20-batch estimate. The spread across seeds shows how much a single figure such as nanoGPT's 1.88 moves.

    python -m bench.bench_baby_quality --data ../shared/data/tinyshakespeare.txt --seeds 1337 1 2
"""

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from data.prepare import prepare_lm_data
from minilm import GPT, GPTConfig
from minilm.training.checkpoint import load_checkpoint, load_model_weights
from minilm.training.lm_task import get_batch

REPO = Path(__file__).resolve().parents[1]


@torch.no_grad()
def full_val_loss(logits_of, tokens, block_size: int) -> float:
    """Mean next-token loss over the validation split cut into non-overlapping windows."""
    ids = torch.from_numpy(tokens.astype("int64"))
    n = (len(ids) - 1) // block_size
    x, y = ids[: n * block_size].view(n, block_size), ids[1: n * block_size + 1].view(n, block_size)
    total = 0.0
    for i in range(0, n, 256):
        logits = logits_of(x[i:i + 256])  # (b, T, vocab)
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[i:i + 256].flatten(), reduction="sum")
    return float(total) / (n * block_size)


def run_minilm(data: str, seed: int):
    """train_gpt.py --config baby, run as a user runs it; returns the model and the checkpoint's config."""
    with tempfile.TemporaryDirectory() as out_dir:
        subprocess.run([sys.executable, str(REPO / "train_gpt.py"), "--config", "baby", "--data", data,
                        "--seed", str(seed), "--out_dir", out_dir, "--progress", "false", "--num_samples", "0"],
                       check=True, cwd=REPO)
        state_dict, config, _ = load_checkpoint(f"{out_dir}/ckpt", with_train_state=False)
    model = GPT(GPTConfig.from_dict(config["model"]))
    load_model_weights(model, state_dict)
    return model.eval(), config


def nanogpt_lr(step: int, t: dict) -> float:
    """nanoGPT's schedule, written out here on purpose: the reference must not share minilm's trainer code."""
    if step < t["warmup_iters"]:
        return t["lr"] * (step + 1) / (t["warmup_iters"] + 1)
    progress = (step - t["warmup_iters"]) / (t["lr_decay_iters"] - t["warmup_iters"])
    return t["min_lr"] + 0.5 * (1 + math.cos(math.pi * progress)) * (t["lr"] - t["min_lr"])


def run_reference(tokens, model_cfg: dict, t: dict, seed: int):
    """t: the training settings minilm's run recorded in its config.json."""
    torch.manual_seed(seed)
    model = GPT2LMHeadModel._from_config(GPT2Config(
        vocab_size=model_cfg["vocab_size"], n_positions=model_cfg["block_size"], n_layer=model_cfg["n_layer"],
        n_head=model_cfg["n_head"], n_embd=model_cfg["n_embd"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=None, eos_token_id=None), attn_implementation="sdpa")
    params = list(model.parameters())
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                                   {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                  lr=t["lr"], betas=(0.9, 0.99))
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(t["max_iters"]):
        for group in optimizer.param_groups:
            group["lr"] = nanogpt_lr(step, t)
        x, y = get_batch(tokens["train"], t["batch_size"], model_cfg["block_size"], generator)
        logits = model(input_ids=x).logits  # (B, T, vocab): the loss on every position, as minilm's
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a text file, e.g. tinyshakespeare.txt")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 1, 2])
    args = parser.parse_args()

    results = {"minilm": [], "transformers": []}
    for seed in args.seeds:
        model, config = run_minilm(args.data, seed)
        model_cfg = config["model"]
        _, tokens = prepare_lm_data(args.data, "char", 4096, config["data"]["val_fraction"], model_cfg["block_size"])
        results["minilm"].append(full_val_loss(lambda x: model(x)[0], tokens["val"], model_cfg["block_size"]))
        reference = run_reference(tokens, model_cfg, config["train"], seed)
        results["transformers"].append(
            full_val_loss(lambda x: reference(input_ids=x).logits, tokens["val"], model_cfg["block_size"]))
        print(f"seed {seed}: minilm {results['minilm'][-1]:.4f}   transformers {results['transformers'][-1]:.4f}")
    for name, losses in results.items():
        spread = f" +- {statistics.stdev(losses):.4f}" if len(losses) > 1 else ""
        print(f"{name:13s} whole-val loss {statistics.mean(losses):.4f}{spread} over seeds {args.seeds}")


if __name__ == "__main__":
    main()
