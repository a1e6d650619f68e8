"""int8 weight-only decoding against float32, on SmolLM2-135M-Instruct (or any model minilm loads), in one
process with the runs interleaved, so that a busy machine slows both alike (docs/compression.md,
docs/experiments/smollm2_decoding.md "int8 weight-only decoding").

    python -m bench.bench_int8_decode                                  # layers, decode, agree; 2 threads
    python -m bench.bench_int8_decode --parts decode --rounds 5 --threads 1 --json out/int8_decode.json
    python -m bench.bench_int8_decode --int8 out/smollm2-int8     # the folder compress quantize wrote

parts:
    layers   ms per call, batch 1, of the LM head (49,152 x 576) and an MLP projection (1,536 x 576), for each
             way tried of multiplying by an int8 weight (CANDIDATES); the projection cycles through 40
             copies so that, as in a real forward, its weight is not already in the cache
    decode   one chat prompt, greedy, 128 new tokens: new tokens per wall second and per CPU second of
             generate (prefill included), float32 and int8 (--compute weight_only) alternating each round
    agree    20 chat prompts, greedy: on how many the first 32 new tokens of int8 equal float32's, and how many
             tokens agree before the first difference (the mean)

The medians and int8 / float32 are printed last, with the load average before and after: figures from a
loaded machine are ratios, not speeds.
"""

import argparse
import copy
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from minilm.compress import quantize_model, set_compute
from minilm.compress.int8 import quantize_rows
from minilm.compress.int8_gemv import gemv_kernel, linear_int8

PARTS = ("layers", "decode", "agree")
DECODE_PROMPT = "Write a short story about a robot who learns to paint."
PROMPTS = [
    "What is the capital of France?", "Name three primary colours.", "How do plants make food?",
    "Give me a tip for learning to cook.", "What is 12 times 7?", "Why is the sky blue?",
    "Tell me a joke about cats.", "What does a computer's CPU do?", "Suggest a name for a goldfish.",
    "How far away is the Moon?", "What is the boiling point of water?", "Write a haiku about autumn.",
    "Explain what a noun is.", "What should I pack for a day at the beach?", "Who wrote Romeo and Juliet?",
    "How do I keep a houseplant alive?", "What is a prime number?", "Describe a rainbow to a child.",
    "Why do we need sleep?", "Write one sentence about the sea.",
]
SHAPES = {"head 49152x576": (49152, 576, 1), "proj 1536x576": (1536, 576, 40)}  # (out, in, copies cycled)


# ----------------------------------------------------------------------------------- layers

def _compiled_fused():
    """torch.compile of 'multiply by the int8 weight, sum, then scale' in one expression (inductor's C++)."""
    return torch.compile(lambda x, q, s: (x[:, None, :] * q.float()).sum(-1) * s, dynamic=False)


def candidates():
    """name -> (prepare(w) -> the weight as that candidate stores it, call(x, stored) -> (1, out))."""
    def int8(w):
        q, s = quantize_rows(w)
        return q, s.squeeze(1).contiguous()

    fused = _compiled_fused()
    out = {
        "float32 F.linear": (lambda w: w, lambda x, w: F.linear(x, w)),
        "bf16 F.linear": (lambda w: w.bfloat16(), lambda x, w: F.linear(x.bfloat16(), w).float()),
        "fp16 F.linear": (lambda w: w.half(), lambda x, w: F.linear(x.half(), w).float()),
        "int8 dequantize + F.linear (weight_only before)": (int8, lambda x, qs: F.linear(x, qs[0].float() * qs[1][:, None])),
        "int8 torch.compile fused": (int8, lambda x, qs: fused(x, *qs)),
        "int8 _weight_int8pack_mm": (int8, lambda x, qs: torch._weight_int8pack_mm(x, qs[0], qs[1])),
        "int8 x int8 _int_mm (compute int8)": (int8, _int8_compute),
    }
    if gemv_kernel() is not None:
        out["int8 C kernel (weight_only now)"] = (int8, lambda x, qs: linear_int8(x, *qs))
    return out


def _int8_compute(x, qs):
    xq, xs = quantize_rows(x)
    return torch._int_mm(F.pad(xq, (0, 0, 0, 16)), qs[0].t())[:1].float() * qs[1] * xs  # _int_mm wants > 16 rows


def time_call(call, n: int) -> float:
    """Median ms of call(i) over n calls, after 3 warm-up calls."""
    for i in range(3):
        call(i)
    times = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


@torch.no_grad()
def part_layers(args) -> dict:
    results = {}
    for shape, (out_f, in_f, copies) in SHAPES.items():
        weights = [torch.randn(out_f, in_f) * 0.02 for _ in range(copies)]
        x = torch.randn(1, in_f)
        reference = F.linear(x, weights[0])
        for name, (prepare, call) in candidates().items():
            try:
                stored = [prepare(w) for w in weights]
                error = (call(x, stored[0]).float() - reference).abs().max().item()
                ms = time_call(lambda i: call(x, stored[i % copies]), args.layer_calls)
            except Exception as err:  # a kernel this build or CPU lacks: say so in the table
                results[f"{shape} | {name}"] = {"error": f"{type(err).__name__}: {str(err)[:120]}"}
                continue
            results[f"{shape} | {name}"] = {"ms": ms, "max_abs_error": error}
            print(f"{shape:16} {name:50} {ms:8.3f} ms   max |error| {error:.4f}", flush=True)
        del weights
    return results


# ----------------------------------------------------------------------------------- decode and agree

def load_models(spec: str, int8_folder: str | None):
    """The float32 model, its int8 weight-only version (quantized here, or read from int8_folder, what
    `python -m minilm.compress quantize ... --compute weight_only` wrote), and the tokenizer."""
    from minilm.chat.load import load_chat_model
    from data.assets import model_path
    chat = load_chat_model(model_path(spec))
    if int8_folder is not None:
        int8 = load_chat_model(int8_folder).model
        set_compute(int8, "weight_only")
    else:
        int8 = copy.deepcopy(chat.model)
        quantize_model(int8, "weight_only")
    return {"float32": chat.model, "int8": int8.eval()}, chat.tokenizer


def prompt_ids(tokenizer, text: str) -> torch.Tensor:
    return torch.tensor([tokenizer.apply_chat_template([{"role": "user", "content": text}])])


@torch.no_grad()
def part_decode(models, tokenizer, args) -> dict:
    ids = prompt_ids(tokenizer, DECODE_PROMPT)
    wall, cpu = {name: [] for name in models}, {name: [] for name in models}
    for round_ in range(args.rounds):
        order = list(models) if round_ % 2 == 0 else list(models)[::-1]  # neither always goes first
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            out = models[name].generate(ids, args.new_tokens, temperature=0.0)
            new = out.shape[1] - ids.shape[1]
            wall[name].append(new / (time.perf_counter() - start))
            cpu[name].append(new / (time.process_time() - start_cpu))
        print(f"round {round_}: " + ", ".join(f"{n} {wall[n][-1]:.1f} tokens/s ({cpu[n][-1]:.1f} per CPU s)"
                                             for n in models), flush=True)
    result = {name: {"tokens_per_s": statistics.median(wall[name]), "tokens_per_cpu_s": statistics.median(cpu[name]),
                     "rounds": wall[name]} for name in models}
    result["ratio"] = result["int8"]["tokens_per_s"] / result["float32"]["tokens_per_s"]
    result["ratio_cpu"] = result["int8"]["tokens_per_cpu_s"] / result["float32"]["tokens_per_cpu_s"]
    return result


@torch.no_grad()
def part_agree(models, tokenizer, args) -> dict:
    same, prefix = 0, []
    for text in PROMPTS:
        ids = prompt_ids(tokenizer, text)
        new = {name: model.generate(ids, args.agree_tokens, temperature=0.0)[0, ids.shape[1]:]
               for name, model in models.items()}
        matches = (new["float32"] == new["int8"]).int()
        prefix.append(int(matches.cumprod(0).sum()))  # tokens equal before the first difference
        same += int(bool(matches.all()))
    print(f"agree: {same} of {len(PROMPTS)} prompts give the same first {args.agree_tokens} tokens; mean equal "
          f"prefix {statistics.mean(prefix):.1f} tokens", flush=True)
    return {"same": same, "prompts": len(PROMPTS), "tokens": args.agree_tokens, "equal_prefix": prefix}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="a .gguf file, a minilm or Hugging Face folder, an alias")
    parser.add_argument("--int8", default=None, help="a quantized checkpoint of --model to time (default: quantize "
                        "--model here)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--agree_tokens", type=int, default=32)
    parser.add_argument("--layer_calls", type=int, default=30, help="timed calls per layer and candidate")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*_weight_int8pack_mm.*")
    results = {"threads": args.threads, "load_average_before": os.getloadavg()[0], "torch": torch.__version__,
               "kernel": gemv_kernel() is not None}
    if "layers" in parts:
        results["layers"] = part_layers(args)
    if {"decode", "agree"} & set(parts):
        models, tokenizer = load_models(args.model, args.int8)
        if "decode" in parts:
            results["decode"] = part_decode(models, tokenizer, args)
        if "agree" in parts:
            results["agree"] = part_agree(models, tokenizer, args)
    results["load_average_after"] = os.getloadavg()[0]
    print(f"\nthreads {args.threads}; load average {results['load_average_before']:.2f} before, "
          f"{results['load_average_after']:.2f} after")
    if "decode" in results:
        d = results["decode"]
        print(f"decode (median of {args.rounds}): float32 {d['float32']['tokens_per_s']:.1f} tokens/s, int8 "
              f"{d['int8']['tokens_per_s']:.1f}: int8 / float32 = {d['ratio']:.2f} (per CPU second {d['ratio_cpu']:.2f})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
