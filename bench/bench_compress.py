"""Compression, measured in one run (docs/compression.md): int8 quantization and head / MLP pruning of the
fine-tuned sentiment MiniLM, and int8 of a GPT `small`, each next to float32 and to torch's own
torch.ao.quantization.quantize_dynamic (the reference; deprecated, and skipped with a note where it is gone).

    accuracy   held-out sentiment accuracy (the split finetune.py held out) of float32, int8, weight-only
               int8, quantize_dynamic; the MiniLM weights' size on disk; max |Δ| of each block's output
               and of the logits against float32
    speed      encoder forward, batch 32 x 64 tokens: float32 / int8 / weight-only / quantize_dynamic /
               pruned, repetitions interleaved so that background load hits them alike; the median, and
               speed-ups against float32 from the same run; the load average is printed beside them
    gpt        a GPT small's validation perplexity, float32 against int8 and quantize_dynamic, and its
               per-block max |Δ|
    prune      head importance (minilm/compress/heads.py) on 512 training examples, then accuracy with 0 to
               80% of the heads removed (least important first, and in a random order for comparison);
               MLP magnitude pruning at 30 / 50 / 70%
    table      parameters, size on disk, CPU latency per sentence (batch 1, median) and accuracy per model

    python -m bench.bench_compress --ckpt out/sentiment-minilm --gpt out/gpt-small/best
    python -m bench.bench_compress --ckpt out/sentiment-minilm --parts speed --threads 2
    python -m bench.bench_compress --ckpt out/sentiment-minilm --parts prune --figures docs/img
"""

import argparse
import copy
import json
import os
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

from bench.bench_distill import latencies
from data.prepare import lm_token_files, load_corpus
from minilm.compress import (Int8Embedding, Int8Linear, compile_kernels, head_importance, least_important, prune_heads, prune_mlp, quantize_model,
                             set_compute, transformer_of)
from minilm.compress.__main__ import (classification_task, classifier_loss, held_out_accuracy, open_checkpoint,
                                      size_mb, training_batches)
from minilm.compress.int8 import INT_MM, dequantize_rows, quantize_rows
from minilm.training.checkpoint import model_state_dict

SHARES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def reference_int8(model):
    """torch.ao.quantization.quantize_dynamic of every nn.Linear (int8 weights, dynamic per-tensor activations),
    or None where this torch no longer has it."""
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def int8_copy(model, compute="int8"):
    quantized = copy.deepcopy(model)
    quantize_model(quantized, compute)
    return quantized.eval()


def variants(model):
    """The models compared: float32, int8, weight-only int8 and (where it exists) quantize_dynamic."""
    found = {"float32": model, "int8": int8_copy(model), "weight-only": int8_copy(model, "weight_only")}
    reference = reference_int8(model)
    if reference is not None:
        found["quantize_dynamic"] = reference
    else:
        print("note: torch.ao.quantization.quantize_dynamic is gone from this torch; the reference is skipped")
    return found


def megabytes_on_disk(model) -> float:
    """The size of the model's weights as a file: safetensors for minilm's, torch.save for torch's packed ones."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights"
        state = model.state_dict()
        if all(isinstance(t, torch.Tensor) and not t.is_quantized for t in state.values()):
            save_file(model_state_dict(model), path)
        else:  # quantize_dynamic's packed weights and dtype entries: only torch.save writes them
            torch.save(state, path)
        return path.stat().st_size / 1e6


def numbers_in(model) -> int:
    """Parameters, counting an int8 module's weight and bias (buffers) as the parameters they stand for, but
    not its scales."""
    count = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        if isinstance(module, (Int8Linear, Int8Embedding)):
            bias = getattr(module, "bias", None)
            count += module.weight.numel() + (bias.numel() if bias is not None else 0)
    return count - tied_int8(model)


def tied_int8(model) -> int:
    """Elements of int8 weights counted twice above because two modules share them (GPT's lm_head and wte)."""
    seen, twice = set(), 0
    for module in model.modules():
        if isinstance(module, (Int8Linear, Int8Embedding)):
            if module.weight.data_ptr() in seen:
                twice += module.weight.numel()
            seen.add(module.weight.data_ptr())
    return twice


@torch.no_grad()
def block_outputs(model, batch) -> list[torch.Tensor]:
    """Each block's output, then the final output (logits), on one batch."""
    outputs, handles = [], [block.register_forward_hook(lambda m, i, out: outputs.append(out))
                            for block in transformer_of(model).blocks]
    try:
        final = model(**batch)[0]
    finally:
        for handle in handles:
            handle.remove()
    return outputs + [final]


def max_deltas(reference, model, batch, mask=None) -> list[float]:
    """max |Δ| per block output (real tokens only, when mask is given) and of the logits."""
    deltas = []
    for ref, out in zip(block_outputs(reference, batch), block_outputs(model, batch)):
        diff = (ref - out).abs()
        if mask is not None and diff.dim() == 3:
            diff = diff[mask.bool()]
        deltas.append(float(diff.max()))
    return deltas


def load_average() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------- the parts

def accuracy_part(opened, task, results):
    models = variants(opened.model)
    probe = {k: v for k, v in training_batches(task, 64, 64)[0].items()}  # 64 examples for the deltas
    float_acc = None
    for name, model in models.items():
        accuracy = held_out_accuracy(model, task)
        float_acc = accuracy if float_acc is None else float_acc
        deltas = max_deltas(opened.model, model, probe, probe["attention_mask"])
        results["accuracy"][name] = {"accuracy": accuracy, "mb": megabytes_on_disk(model), "max_delta": deltas}
        print(f"{name:18s} accuracy {accuracy:.4f} ({100 * (accuracy - float_acc):+.2f} points)  "
              f"{results['accuracy'][name]['mb']:6.1f} MB  max|Δ| per block {' '.join(f'{d:.3f}' for d in deltas[:-1])}"
              f"  logits {deltas[-1]:.4f}")


@torch.no_grad()
def timed(models: dict, inputs: dict, rounds: int) -> dict[str, float]:
    """Median seconds of one forward for each model, the models taking turns (alternating order) each round."""
    times = {name: [] for name in models}
    for model in models.values():
        model(**inputs)  # warm-up
    for r in range(rounds):
        order = list(models.items()) if r % 2 == 0 else list(reversed(models.items()))
        for name, model in order:
            start = time.perf_counter()
            model(**inputs)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def speed_part(opened, results, rounds: int, pruned=None):
    """Two interleaved sets, each against float32 in the same set: eager, then with compile_kernels()."""
    encoders = {name: transformer_of(model) for name, model in variants(opened.model).items()}
    if pruned is not None:
        encoders["pruned"] = transformer_of(pruned)
        encoders["pruned int8"] = transformer_of(int8_copy(pruned))
    ids = torch.randint(1000, 30000, (32, 64), generator=torch.Generator().manual_seed(0))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    print(f"encoder forward, batch 32 x 64, {torch.get_num_threads()} threads, torch._int_mm "
          f"{'yes' if INT_MM else 'no'}; {load_average()} before")
    results["speed"] = {"threads": torch.get_num_threads()}
    for kernels in ("eager", "compiled"):
        if kernels == "compiled" and not compile_kernels():
            break
        chosen = encoders if kernels == "eager" else {k: v for k, v in encoders.items() if "int8" in k or k == "float32"}
        seconds = timed(chosen, inputs, rounds)
        for name, s in seconds.items():
            print(f"{kernels:8s} {name:18s} {1000 * s:8.1f} ms  speed-up {seconds['float32'] / s:5.2f}x")
        results["speed"][kernels] = {k: 1000 * v for k, v in seconds.items()}
    compile_kernels(False)
    results["speed"]["load"] = os.getloadavg()
    print(f"({load_average()} after)")


@torch.no_grad()
def perplexity(model, windows: torch.Tensor) -> float:
    losses = [model(w[None, :-1], targets=w[None, 1:])[1] for w in windows]
    return float(torch.stack(losses).mean().exp())


def gpt_part(folder, results, n_windows: int):
    opened = open_checkpoint(folder)
    config = opened.model.config
    texts = load_corpus(opened.config.get("data", {}).get("data"), opened.config.get("data", {}).get("val_fraction", 0.1),
                        config.block_size)
    val = torch.from_numpy(lm_token_files(texts, opened.tokenizer, config.block_size)["val"].astype("int64"))
    step = config.block_size + 1
    windows = val[: (len(val) // step) * step].view(-1, step)[:n_windows]  # disjoint windows, the same each run
    models = variants(opened.model)
    base = perplexity(opened.model, windows)
    print(f"GPT {folder}: {len(windows)} validation windows of {config.block_size} tokens")
    for name, model in models.items():
        ppl = perplexity(model, windows)
        deltas = max_deltas(opened.model, model, {"input_ids": windows[:8, :-1]})
        results["gpt"][name] = {"perplexity": ppl, "max_delta": deltas}
        print(f"{name:18s} perplexity {ppl:.4f} ({100 * (ppl / base - 1):+.2f}%)  max|Δ| per block "
              f"{' '.join(f'{d:.3f}' for d in deltas[:-1])}  logits {deltas[-1]:.4f}")


def plan_of(order: list[tuple[int, int]], share: float) -> dict[int, list[int]]:
    """The first share of the heads in order (a list of (layer, head)), as prune_heads takes them."""
    plan = {}
    for layer, head in order[:round(share * len(order))]:
        plan.setdefault(layer, []).append(head)
    return {layer: sorted(heads) for layer, heads in sorted(plan.items())}


def pruned_copy(model, plan):
    pruned = copy.deepcopy(model)
    prune_heads(pruned, plan)
    return pruned


def prune_part(opened, task, results, examples: int):
    """Accuracy against the share of heads removed; returns the plan of the largest share within 1 point."""
    start = time.perf_counter()
    importance = head_importance(opened.model, training_batches(task, examples, 32), classifier_loss)
    print(f"head importance on {examples} training examples: {time.perf_counter() - start:.0f} s")
    ranked = sorted((float(s), layer, head) for layer, scores in enumerate(importance) for head, s in enumerate(scores))
    orders = {"importance": [(layer, head) for _, layer, head in ranked]}
    orders["random"] = random.Random(0).sample(orders["importance"], len(ranked))
    curves = {name: [] for name in orders}
    for share in SHARES:
        for name, order in orders.items():
            curves[name].append(held_out_accuracy(pruned_copy(opened.model, plan_of(order, share)), task))
        print(f"{share:4.0%} of heads removed: accuracy {curves['importance'][-1]:.4f} by importance, "
              f"{curves['random'][-1]:.4f} in a random order")
    within = 0.0  # the largest share such that it and every smaller one stay within 1 point of float32
    for share, accuracy in zip(SHARES, curves["importance"]):
        if accuracy < curves["importance"][0] - 0.01:
            break
        within = share
    best = least_important(importance, within)
    print(f"largest share within 1 point (and every smaller one): {within:.0%}, heads per layer "
          f"{[len(scores) - len(best.get(layer, [])) for layer, scores in enumerate(importance)]}")
    results["prune"] = {"shares": SHARES, "curves": curves, "importance": [s.tolist() for s in importance],
                        "within_one_point": within, "plan": best}
    for amount in (0.3, 0.5, 0.7):
        sparse = copy.deepcopy(opened.model)
        prune_mlp(sparse, amount)
        results["prune"][f"mlp_{amount}"] = held_out_accuracy(sparse, task)
        print(f"MLP weights {amount:.0%} zero (magnitude): accuracy {results['prune'][f'mlp_{amount}']:.4f}")
    return best


def table_part(folders: list[str], sentences: int):
    """Parameters, MB on disk, ms per sentence (batch 1, median over held-out sentences) and accuracy."""
    loaded = {folder: open_checkpoint(folder, allow_quantized=True) for folder in folders}
    task = classification_task(next(iter(loaded.values())))
    times = latencies({name: o.model for name, o in loaded.items()}, task.examples["val"][:sentences])
    print(f"{len(task.examples['val'])} held-out sentences, {sentences} timed one at a time, "
          f"{torch.get_num_threads()} threads; {load_average()}")
    print(f"{'model':42s} {'parameters':>11s} {'MB':>6s} {'ms/sentence':>11s} {'accuracy':>8s}")
    for name, o in loaded.items():
        ms = 1000 * statistics.median(times[name])
        print(f"{name:42s} {numbers_in(o.model):11,d} {size_mb(o.folder):6.1f} {ms:11.2f} "
              f"{held_out_accuracy(o.model, task):8.2%}")


# ---------------------------------------------------------------------------------------- the pictures

def draw_heads_curve(results, path: Path):
    import matplotlib.pyplot as plt
    prune = results["prune"]
    shares = [100 * s for s in prune["shares"]]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(shares, [100 * a for a in prune["curves"]["importance"]], "o-", label="least important first (gate gradients)")
    ax.plot(shares, [100 * a for a in prune["curves"]["random"]], "s--", color="gray", label="random order")
    ax.axhline(100 * prune["curves"]["importance"][0] - 1, color="tab:red", lw=0.8, ls=":", label="float32 − 1 point")
    ax.set(xlabel="share of the 72 heads removed (%)", ylabel="held-out accuracy (%)",
           title="Sentiment MiniLM: accuracy as heads are pruned (no re-fine-tune)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_histogram(weight: torch.Tensor, name: str, path: Path):
    """The layer's weights before and after int8, and one row close up: its values snap to a grid of step s."""
    import matplotlib.pyplot as plt
    q, scale = quantize_rows(weight)
    restored = dequantize_rows(q, scale)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    bins = torch.linspace(float(weight.min()), float(weight.max()), 121).tolist()
    left.hist(weight.flatten().tolist(), bins=bins, alpha=0.6, label="float32")
    left.hist(restored.flatten().tolist(), bins=bins, histtype="step", color="black", label="int8 · scale")
    left.set(title=f"{name}: all {weight.numel():,} weights", xlabel="weight", ylabel="count", yscale="log")
    left.legend()
    row, step = weight[0], float(scale[0])
    near = row.abs() < 6 * step  # a close-up of the weights near zero
    right.plot([-6 * step, 6 * step], [-6 * step, 6 * step], color="gray", lw=0.8, label="no change")
    right.plot(row[near].tolist(), restored[0][near].tolist(), ".", color="black", label="int8 · scale")
    right.set(title=f"row 0 near zero: step s = {step:.1e}, moves ≤ s/2", xlabel="weight before (float32)",
              ylabel="weight after")
    right.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="the fine-tuned sentiment MiniLM (finetune.py out_dir)")
    parser.add_argument("--gpt", help="a train_gpt.py small checkpoint (part gpt)")
    parser.add_argument("--parts", default="accuracy,speed,gpt,prune", help="comma-separated: accuracy, speed, "
                        "gpt, prune, table")
    parser.add_argument("--table", nargs="*", default=[], help="checkpoint folders for part table")
    parser.add_argument("--pruned", help="a pruned checkpoint to time in part speed (default: part prune's, if run)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the 2-core figure: 2)")
    parser.add_argument("--rounds", type=int, default=9, help="timed forwards per model (part speed)")
    parser.add_argument("--sentences", type=int, default=200, help="sentences timed one at a time (part table)")
    parser.add_argument("--gpt_windows", type=int, default=400, help="validation windows (part gpt)")
    parser.add_argument("--importance_examples", type=int, default=512)
    parser.add_argument("--figures", help="write compression_heads.png and compression_histogram.png here")
    parser.add_argument("--json", help="write every figure measured to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    results = {"accuracy": {}, "gpt": {}}
    opened = open_checkpoint(args.ckpt)
    task = classification_task(opened)
    print(f"{args.ckpt}: {len(task.examples['val'])} held-out examples; torch {torch.__version__}")
    if "accuracy" in parts:
        accuracy_part(opened, task, results)
    plan = prune_part(opened, task, results, args.importance_examples) if "prune" in parts else None
    if "speed" in parts:
        pruned = open_checkpoint(args.pruned).model if args.pruned else pruned_copy(opened.model, plan) if plan else None
        speed_part(opened, results, args.rounds, pruned)
    if "gpt" in parts and args.gpt:
        gpt_part(args.gpt, results, args.gpt_windows)
    if "table" in parts:
        table_part(args.table, args.sentences)
    if args.figures:
        Path(args.figures).mkdir(parents=True, exist_ok=True)
        weight = transformer_of(opened.model).blocks[0].attn.q_proj.weight.detach()
        draw_histogram(weight, "blocks.0.attn.q_proj", Path(args.figures) / "compression_histogram.png")
        if "prune" in results:
            draw_heads_curve(results, Path(args.figures) / "compression_heads.png")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
