"""One training step of minilm's shared loop against a plain loop around transformers' GPT2LMHeadModel.

minilm: `Trainer.train_step` with train_gpt.py's LanguageModelTask (batch drawing from a token array,
forward, loss, backward, gradient clipping, AdamW, learning-rate schedule). Reference: the same batch
drawing, GPT2LMHeadModel(labels=...) forward + backward, clipping and AdamW, written as the usual
hand loop. Same config, same run, repetitions interleaved; ratio = minilm / reference (below 1.0:
minilm is faster). Attention: minilm `manual` against transformers `eager` (both write the softmax out).

    python -m bench.bench_train_step                        # the train_gpt `small` shape, ~1 minute
    python -m bench.bench_train_step --n_layer 12 --n_embd 768 --n_head 12 --block_size 256 --batch_size 2
"""

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from minilm import GPT, GPTConfig
from minilm.training.lm_task import LanguageModelTask, get_batch
from minilm.training.trainer import Trainer, TrainConfig


def reference_step(model, optimizer, tokens, args, generator):
    x, y = get_batch(tokens, args.batch_size, args.block_size, generator)
    # transformers shifts the labels inside the model: it scores T-1 positions of x, minilm T.
    loss = model(input_ids=x, labels=x).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n_layer", type=int, default=4)
    parser.add_argument("--n_head", type=int, default=4)
    parser.add_argument("--n_embd", type=int, default=128)
    parser.add_argument("--block_size", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--vocab_size", type=int, default=65)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed repetition")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    tokens = np.random.default_rng(0).integers(0, args.vocab_size, 200_000).astype(np.uint16)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=args.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                       n_head=args.n_head, n_embd=args.n_embd)
    with tempfile.TemporaryDirectory() as out_dir:
        train_cfg = TrainConfig(out_dir=out_dir, batch_size=args.batch_size, max_iters=10**9, device="cpu",
                                progress=False)
        trainer = Trainer(GPT(config), LanguageModelTask({"train": tokens, "val": tokens}, args.block_size),
                          train_cfg, checkpoint_config={})
        reference = GPT2LMHeadModel._from_config(GPT2Config(
            vocab_size=args.vocab_size, n_positions=args.block_size, n_layer=args.n_layer, n_head=args.n_head,
            n_embd=args.n_embd, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None,
            eos_token_id=None), attn_implementation="eager")
        ref_optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
        generator = torch.Generator().manual_seed(0)

        runs = {"minilm": trainer.train_step,
                "transformers": lambda: reference_step(reference, ref_optimizer, tokens, args, generator)}
        times = {name: [] for name in runs}
        for run in runs.values():  # warm-up
            run()
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    run()
                times[name].append((time.perf_counter() - start) / args.steps)
    mine, ref = (1000 * statistics.median(times[name]) for name in ("minilm", "transformers"))
    print(f"shape: {args.n_layer} layers x {args.n_embd} wide, batch {args.batch_size} x {args.block_size}, "
          f"{torch.get_num_threads()} threads")
    print(f"minilm Trainer.train_step   {mine:8.1f} ms/step")
    print(f"transformers hand loop      {ref:8.1f} ms/step")
    print(f"ratio minilm / reference    {mine / ref:8.2f}")


if __name__ == "__main__":
    main()
