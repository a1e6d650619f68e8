"""CUDA checks and figures, run on a GPU machine as one script (the tests cover the same logic on CPU).

    python bench/gpu_check.py --data tinyshakespeare.txt --out $OUT

1. manual vs sdpa attention agree on CUDA (fp32, and bf16 within bf16's precision);
2. short train_gpt.py runs in float32, bfloat16 and float16 (GradScaler) reduce the loss, with and
   without --compile; ms/step for each; checkpoints carry no `_orig_mod.` prefix;
3. a 1-process torchrun run (NCCL backend) trains;
4. a training step of the gpt2 (124M) shape, minilm against transformers' GPT2LMHeadModel (same run);
5. the same step with bf16 + torch.compile + sdpa, both models: tokens/s and MFU (goal: >= 40% for minilm);
6. nanoGPT's 6-layer Shakespeare config (--long): the validation loss after 5000 steps (nanoGPT: 1.47) and
   the steps and (estimated) seconds to first reach 1.47.
Results go to OUT/gpu_results.json and are printed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from minilm import GPT, GPTConfig  # noqa: E402
from minilm.training.checkpoint import load_checkpoint  # noqa: E402
from minilm.training.throughput import flops_per_token, peak_flops  # noqa: E402

RESULTS = {}


def record(name, value):
    RESULTS[name] = value
    print(f"[result] {name}: {value}", flush=True)


def check_attention():
    torch.manual_seed(0)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        cfg = GPTConfig(vocab_size=100, block_size=256, n_layer=2, n_head=4, n_embd=128)
        manual = GPT(cfg).cuda().to(dtype).eval()
        fused = GPT(GPTConfig(**{**cfg.to_dict(), "attn_impl": "sdpa"})).cuda().to(dtype).eval()
        fused.load_state_dict(manual.state_dict())
        input_ids = torch.randint(100, (4, 256), device="cuda")
        mask = torch.ones(4, 256, device="cuda")
        mask[1, 200:] = 0
        with torch.no_grad():
            a, _ = manual(input_ids)
            b, _ = fused(input_ids)
            c, _ = manual(input_ids, attention_mask=mask)
            d, _ = fused(input_ids, attention_mask=mask)
        diff = max((a - b).abs().max().item(), (c[mask.bool()] - d[mask.bool()]).abs().max().item())
        record(f"attention manual vs sdpa max|diff| {str(dtype)}", diff)
        assert diff < tol * max(1.0, a.abs().max().item()), diff


def train_run(name, data, out, extra):
    out_dir = Path(out) / name
    argv = ["--config", "small", "--data", data, "--out_dir", str(out_dir), "--device", "cuda",
            "--progress", "false", "--num_samples", "0", "--eval_iters", "10"] + extra
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "train_gpt.py"), *argv], check=True, cwd=REPO)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    metrics = [r for r in rows if "val_loss" in r][-1]  # the last evaluation
    ms = [r["ms_per_step"] for r in rows if "ms_per_step" in r][1:] or [float("nan")]
    losses = [r["loss"] for r in rows if "loss" in r]
    state, _, train_state = load_checkpoint(out_dir / "ckpt")
    assert not any(k.startswith("_orig_mod") for k in state), "compiled prefix leaked into checkpoint"
    record(name, {"val_loss": round(metrics["val_loss"], 4), "first_logged_loss": round(losses[0], 4),
                  "last_logged_loss": round(losses[-1], 4), "ms_per_step_median": round(statistics.median(ms), 2),
                  "wall_s": round(seconds, 1), "skipped_steps": train_state.get("skipped_steps")})
    assert losses[-1] < losses[0], f"{name}: loss did not fall"
    return metrics


def check_training(data, out):
    short = ["--max_iters", "200", "--eval_interval", "200", "--log_interval", "50", "--batch_size", "64",
             "--block_size", "256", "--n_layer", "6", "--n_head", "6", "--n_embd", "384"]
    for dtype in ("float32", "bfloat16", "float16"):
        train_run(f"train_{dtype}", data, out, short + ["--dtype", dtype])
    train_run("train_bfloat16_compile", data, out, short + ["--dtype", "bfloat16", "--compile"])
    train_run("train_bfloat16_compile_sdpa", data, out,
              short + ["--dtype", "bfloat16", "--compile", "--attn_impl", "sdpa"])


def check_ddp(data, out):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--master_port=29533",
           "train_gpt.py", "--config", "small", "--data", data, "--out_dir", str(Path(out) / "ddp"),
           "--max_iters", "50", "--eval_interval", "50", "--progress", "false", "--num_samples", "0",
           "--dtype", "bfloat16"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    record("ddp_nccl_1proc_returncode", result.returncode)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:])


def bench_gpt2_step(steps=20):
    from transformers import GPT2Config, GPT2LMHeadModel
    B, T = 16, 1024
    input_ids = torch.randint(50257, (B, T), device="cuda")
    results = {}
    for impl in ("manual", "sdpa"):
        mine = GPT(GPTConfig.preset("gpt2", attn_impl=impl)).cuda()
        hf_cfg = GPT2Config(n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        hf_cfg._attn_implementation = "eager" if impl == "manual" else "sdpa"
        ref = GPT2LMHeadModel(hf_cfg).cuda()
        for name, model, step in (("minilm", mine, lambda m: m(input_ids, targets=input_ids)[1]),
                                  ("transformers", ref, lambda m: m(input_ids, labels=input_ids).loss)):
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
            times = []
            for i in range(steps):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = step(model)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            results[f"{name}_{impl}_ms"] = round(1000 * statistics.median(times[5:]), 2)
        results[f"ratio_{impl}_minilm_over_ref"] = round(results[f"minilm_{impl}_ms"] / results[f"transformers_{impl}_ms"], 3)
        del mine, ref
        torch.cuda.empty_cache()
    results["tokens_per_s_minilm_sdpa"] = round(B * T / (results["minilm_sdpa_ms"] / 1000))
    record("gpt2_124M_train_step_bf16_B16xT1024", results)


def timed_steps(model, step, steps: int, device: str) -> float:
    """Median seconds of one optimizer step (bf16 autocast, fused AdamW on CUDA), after 5 warm-up steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    for _ in range(steps + 5):
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = step(model)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[5:])


def bench_gpt2_compiled(steps=30, device="cuda", B=16, T=1024, **shape):
    """bf16 + compile + sdpa: tokens/s and MFU of minilm and of transformers' GPT2LMHeadModel, same run.
    MFU counts the same FLOPs for both (minilm/training/throughput.py, from minilm's model)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPTConfig.preset("gpt2", attn_impl="sdpa", **shape)
    input_ids = torch.randint(config.vocab_size, (B, T), device=device)
    mine = GPT(config).to(device)
    flops = flops_per_token(mine, T)
    peak = peak_flops(device, "bfloat16")
    hf_cfg = GPT2Config(n_embd=config.n_embd, n_layer=config.n_layer, n_head=config.n_head,
                        n_positions=config.block_size, vocab_size=config.vocab_size,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf_cfg._attn_implementation = "sdpa"
    results = {"flops_per_token": flops, "peak_flops_bf16": peak}
    for name, build, step in (("minilm", lambda: mine, lambda m: m(input_ids, targets=input_ids)[1]),
                              ("transformers", lambda: GPT2LMHeadModel(hf_cfg).to(device),
                               lambda m: m(input_ids, labels=input_ids).loss)):
        seconds = timed_steps(torch.compile(build()), step, steps, device)
        tokens_per_s = B * T / seconds
        results[f"{name}_ms"] = round(1000 * seconds, 2)
        results[f"{name}_tokens_per_s"] = round(tokens_per_s)
        results[f"{name}_mfu"] = round(tokens_per_s * flops / peak, 4) if peak else None
    results["ratio_minilm_over_transformers_ms"] = round(results["minilm_ms"] / results["transformers_ms"], 3)
    record(f"gpt2_124M_train_step_bf16_compile_sdpa_B{B}xT{T}", results)
    return results


def nanogpt_long(data, out):
    # nanoGPT's train_shakespeare_char config: 6/6/384, block 256, batch 64, dropout 0.2, 5000 iters.
    argv = ["--max_iters", "5000", "--eval_interval", "500", "--log_interval", "250", "--batch_size", "64",
            "--block_size", "256", "--n_layer", "6", "--n_head", "6", "--n_embd", "384", "--dropout", "0.2",
            "--attn_dropout", "0.2",
            "--lr", "1e-3", "--min_lr", "1e-4", "--warmup_iters", "100", "--lr_decay_iters", "5000",
            "--beta2", "0.99", "--weight_decay", "0.1", "--eval_iters", "100",
            "--dtype", "bfloat16", "--compile", "--attn_impl", "sdpa"]
    train_run("nanogpt_shakespeare_char_6layer", data, out, argv)
    rows = [json.loads(line) for line in (Path(out) / "nanogpt_shakespeare_char_6layer" / "metrics.jsonl")
            .read_text().splitlines()]
    reached = next((r["step"] for r in rows if r.get("val_loss", 9) <= 1.47), None)
    wall = RESULTS["nanogpt_shakespeare_char_6layer"]["wall_s"]
    # Evaluations every 500 steps, so "first reached" is rounded up to one; seconds are estimated from
    # the run's wall time (start-up and compile included) in proportion to the steps.
    record("nanogpt_steps_to_val_1.47", reached)
    record("nanogpt_seconds_to_val_1.47_estimated", round(wall * reached / 5000, 1) if reached else None)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default="out/gpu")
    parser.add_argument("--long", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated step names to run")
    args = parser.parse_args()
    os.chdir(Path(__file__).resolve().parents[1])
    record("device", torch.cuda.get_device_name())
    record("torch", torch.__version__)
    steps = [("attention", check_attention), ("training", lambda: check_training(args.data, args.out)),
             ("ddp", lambda: check_ddp(args.data, args.out)), ("gpt2_step", bench_gpt2_step),
             ("gpt2_compiled", bench_gpt2_compiled)]
    if args.long:
        steps.append(("nanogpt_long", lambda: nanogpt_long(args.data, args.out)))
    for name, fn in steps:
        if args.only and name not in args.only.split(","):
            continue
        try:
            fn()
        except Exception as err:  # report and go on: one failure should not hide the other figures
            record(f"{name}_error", repr(err))
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_results.json").write_text(json.dumps(RESULTS, indent=2))


if __name__ == "__main__":
    main()
