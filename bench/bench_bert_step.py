"""Pretraining-step speed on CPU: minilm BertForPreTraining against transformers' BertForPreTraining.

One step = forward (MLM + NSP loss) + backward + AdamW step, on the same config and the same batch
(64 pairs x 64 tokens, 15% of the real tokens with an MLM label, some padding). Three variants:

    reference      transformers: its MLM head runs on every position (B x T x V logits)
    minilm-all     minilm with the MLM head on every position too: the like-for-like comparison
    minilm         minilm as train_bert.py runs it: the head only on the ~15% labelled positions

Repetitions are interleaved so that background load hits all variants alike; the median per-step time
and the ratio to the reference are reported (below 1.0: minilm is faster). The attention kinds are
paired as in bench_model.py: minilm `manual` with the reference's `eager`, `sdpa` with `sdpa`.

    python -m bench.bench_bert_step                 # from the repo root; a minute or two on 2 cores
    python -m bench.bench_bert_step --shape base --repeats 3
"""

import argparse
import statistics
import time

import torch
from transformers import BertConfig as HFBertConfig
from transformers import BertForPreTraining as HFBertForPreTraining

from minilm import BertConfig, BertForPreTraining
from minilm.model.losses import IGNORE_INDEX, mlm_loss, nsp_loss

# name -> (model fields, batch size, sequence length, steps per timed repetition)
SHAPES = {
    "small": (dict(BertConfig.PRESETS["small"], block_size=64), 64, 64, 3),  # train_bert.py --config small
    "base": (dict(BertConfig.PRESETS["bert-base"], block_size=128), 8, 128, 1),
}


def build_models(fields, attn_impl):
    torch.manual_seed(0)
    minilm = BertForPreTraining(BertConfig(**fields, dropout=0.0, attn_dropout=0.0, attn_impl=attn_impl)).train()
    reference_config = HFBertConfig(
        vocab_size=fields["vocab_size"], max_position_embeddings=fields["block_size"],
        num_hidden_layers=fields["n_layer"], num_attention_heads=fields["n_head"], hidden_size=fields["n_embd"],
        intermediate_size=fields.get("n_inner") or 4 * fields["n_embd"],
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    reference = HFBertForPreTraining._from_config(reference_config,
                                                  attn_implementation="eager" if attn_impl == "manual" else "sdpa")
    return minilm, reference.train()


def make_batch(vocab_size, batch_size, seq_len):
    """Random pairs with lengths between 3/4 and all of seq_len, 15% of real tokens labelled."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=g)
    lengths = torch.randint(3 * seq_len // 4, seq_len + 1, (batch_size,), generator=g)
    attention_mask = (torch.arange(seq_len)[None] < lengths[:, None]).long()
    token_type_ids = (torch.arange(seq_len)[None] >= lengths[:, None] // 2).long() * attention_mask
    chosen = (torch.rand(ids.shape, generator=g) < 0.15) & attention_mask.bool()
    mlm_labels = torch.where(chosen, ids, IGNORE_INDEX)
    nsp_labels = torch.randint(2, (batch_size,), generator=g)
    return dict(input_ids=ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                mlm_labels=mlm_labels, nsp_labels=nsp_labels)


def loss_fn(variant, model, batch):
    if variant == "reference":
        return model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                     attention_mask=batch["attention_mask"], labels=batch["mlm_labels"],
                     next_sentence_label=batch["nsp_labels"]).loss
    if variant == "minilm-all":  # no mlm_labels in forward: the head runs on all B x T positions
        out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        return mlm_loss(out.mlm_logits, batch["mlm_labels"]) + nsp_loss(out.nsp_logits, batch["nsp_labels"])
    return model(**batch).loss


def make_step(variant, model, batch):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        loss_fn(variant, model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def time_steps(step, n_steps):
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    return (time.perf_counter() - start) / n_steps * 1000  # ms per step


def bench(shape, attn_impl, repeats, warmup):
    fields, batch_size, seq_len, n_steps = SHAPES[shape]
    minilm, reference = build_models(fields, attn_impl)
    batch = make_batch(fields["vocab_size"], batch_size, seq_len)
    steps = {"reference": make_step("reference", reference, batch),
             "minilm-all": make_step("minilm-all", minilm, batch),
             "minilm": make_step("minilm", minilm, batch)}
    times = {name: [] for name in steps}
    for rep in range(warmup + repeats):
        for name, step in steps.items():  # interleaved: one repetition of each in turn
            elapsed = time_steps(step, n_steps)
            if rep >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="small", choices=list(SHAPES))
    parser.add_argument("--attn", nargs="+", default=["sdpa", "manual"], choices=["sdpa", "manual"])
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per variant (median taken)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions per variant first")
    args = parser.parse_args()
    fields, batch_size, seq_len, n_steps = SHAPES[args.shape]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.shape}: {fields['n_layer']} layers, "
          f"{fields['n_embd']} wide, vocab {fields['vocab_size']}; batch {batch_size} x {seq_len}, "
          f"{n_steps} step(s) x {args.repeats} repetitions")
    print(f"{'attention':<16}{'variant':<12}{'ms/step':>10}{'/ reference':>13}")
    for attn_impl in args.attn:
        medians = bench(args.shape, attn_impl, args.repeats, args.warmup)
        label = f"{attn_impl} / {'eager' if attn_impl == 'manual' else 'sdpa'}"
        for name, ms in medians.items():
            print(f"{label:<16}{name:<12}{ms:>10.1f}{ms / medians['reference']:>13.2f}")


if __name__ == "__main__":
    main()
