"""Training-step speed on CPU: minilm GPT against transformers' GPT2LMHeadModel with the same config.

One step = forward + cross-entropy + backward + AdamW step. For each shape, minilm (attn_impl
`manual` and `sdpa`) and the reference (attn_implementation `eager` and `sdpa`) are timed in the
same run, repetitions interleaved so that background load hits all four alike, and the median
per-step time is reported with the ratio minilm / reference for the same attention kind
(`manual` is compared with `eager`: both write the softmax out; below 1.0 means minilm is faster).

    python -m bench.bench_model                 # both shapes (from the repo root), a couple of minutes on 2 cores
    python -m bench.bench_model --shapes small --repeats 7
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from minilm import GPT, GPTConfig

# name -> (model fields, batch size, sequence length, steps per timed repetition)
SHAPES = {
    "small": (dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128), 12, 128, 5),
    "gpt2": (GPTConfig.PRESETS["gpt2"], 1, 256, 1),
}
PAIRS = [("manual", "eager"), ("sdpa", "sdpa")]  # (minilm attn_impl, reference attn_implementation)


def build_models(fields):
    """One minilm GPT and one GPT2LMHeadModel; the attention kind is switched before each timing."""
    torch.manual_seed(0)
    minilm = GPT(GPTConfig(**fields))
    reference_config = GPT2Config(
        vocab_size=fields["vocab_size"], n_positions=fields["block_size"], n_layer=fields["n_layer"],
        n_head=fields["n_head"], n_embd=fields["n_embd"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=None, eos_token_id=None,  # GPT-2's 50256 is outside a small vocabulary
    )
    reference = GPT2LMHeadModel._from_config(reference_config, attn_implementation="eager")
    return minilm, reference


def set_attention(model, kind):
    if isinstance(model, GPT):
        for block in model.blocks:
            block.attn.attn_impl = kind
    else:
        model.set_attn_implementation(kind)


def make_step(model, optimizer, ids, targets):
    def step():
        if isinstance(model, GPT):
            logits, _ = model(ids)
        else:
            logits = model(input_ids=ids).logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # the same loss for both
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def time_steps(step, n_steps):
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    return (time.perf_counter() - start) / n_steps * 1000  # ms per step


def bench_shape(name, repeats, warmup):
    fields, batch, seq_len, n_steps = SHAPES[name]
    minilm, reference = build_models(fields)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(fields["vocab_size"], (batch, seq_len + 1), generator=generator)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    variants = {}  # label -> (model, attention kind, step)
    for model, label in ((minilm, "minilm"), (reference, "reference")):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for kind in (PAIRS[0][0], PAIRS[1][0]) if label == "minilm" else (PAIRS[0][1], PAIRS[1][1]):
            variants[(label, kind)] = (model, kind, make_step(model, optimizer, inputs, targets))

    times = {key: [] for key in variants}
    for rep in range(warmup + repeats):
        for key, (model, kind, step) in variants.items():  # interleaved: one repetition of each in turn
            set_attention(model, kind)
            elapsed = time_steps(step, n_steps)
            if rep >= warmup:
                times[key].append(elapsed)
    medians = {key: statistics.median(values) for key, values in times.items()}
    spreads = {key: (min(values), max(values)) for key, values in times.items()}
    return medians, spreads, f"{name}: batch {batch} x {seq_len} tokens, {n_steps} step(s) x {repeats} repetitions"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per variant (median taken)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions per variant first")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.shapes:
        medians, spreads, description = bench_shape(name, args.repeats, args.warmup)
        print(f"\n{description}", flush=True)
        print(f"{'attention':<16}{'minilm ms/step':>16}{'reference ms/step':>19}{'minilm/ref':>12}")
        for minilm_kind, reference_kind in PAIRS:
            ours, theirs = medians[("minilm", minilm_kind)], medians[("reference", reference_kind)]
            print(f"{minilm_kind + ' / ' + reference_kind:<16}{ours:>16.1f}{theirs:>19.1f}{ours / theirs:>12.2f}"
                  f"   (min-max {spreads[('minilm', minilm_kind)][0]:.0f}-{spreads[('minilm', minilm_kind)][1]:.0f}"
                  f" vs {spreads[('reference', reference_kind)][0]:.0f}-{spreads[('reference', reference_kind)][1]:.0f})")


if __name__ == "__main__":
    main()
