"""Pretraining-step speed on CPU of the successor presets against transformers' models of the same config.

One step = forward (the objective's loss) + backward + AdamW step, on the same batch, in the same run:

    roberta-small   minilm BertForMaskedLM        vs RobertaForMaskedLM
    albert-small    minilm BertForPreTraining     vs AlbertForPreTraining (E = 64, one shared layer group)
                    (factorised, shared, SOP)
    electra-small   minilm Electra                vs ElectraForMaskedLM (generator) + ElectraForPreTraining
                    (generator + discriminator)      (discriminator), embeddings shared, the samples drawn
                                                     between them: loss = MLM + 50 · RTD, as minilm's

Batches are the preset's: 32 sequences of 128 tokens (RoBERTa and ELECTRA: full sentences, no padding;
ALBERT: pairs with some padding), 15% of the real tokens with an MLM label. minilm runs its MLM head on the
labelled positions only (as train_bert.py does); transformers' on every position. Repetitions are
interleaved so that background load hits both alike; the median per-step time and the ratio are reported
(below 1.0: minilm is faster). Both use sdpa attention, as the presets do.

    python -m bench.bench_successors_step              # from the repo root; a few minutes on 2 cores
    python -m bench.bench_successors_step --presets electra-small --repeats 3
"""

import argparse
import statistics

import torch
import transformers as hf

from bench.bench_bert_step import make_batch as make_pairs
from bench.bench_bert_step import time_steps
from minilm.model import BertConfig, BertForMaskedLM, BertForPreTraining, Electra, ElectraConfig
from minilm.model.losses import IGNORE_INDEX
from minilm.training.presets import BERT_PRESETS

CLS, SEP, MASK = 2, 3, 4  # the trained WordPiece vocabulary's ids (data/bert_corpus.py)
BATCH, SEQ_LEN = 32, 128


def hf_fields(c) -> dict:
    """The transformers config fields every family shares, from a minilm config."""
    return dict(vocab_size=c.vocab_size, hidden_size=c.n_embd, num_hidden_layers=c.n_layer,
                num_attention_heads=c.n_head, intermediate_size=c.mlp_width, hidden_act="gelu",
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=c.block_size,
                type_vocab_size=c.type_vocab_size, layer_norm_eps=c.layer_norm_eps, pad_token_id=c.pad_token_id)


def full_sentences(vocab_size: int) -> dict[str, torch.Tensor]:
    """[CLS] text [SEP] with no padding, 15% of the text masked: RoBERTa's and ELECTRA's batches."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab_size, (BATCH, SEQ_LEN), generator=g)
    ids[:, 0], ids[:, -1] = CLS, SEP
    chosen = torch.rand(ids.shape, generator=g) < 0.15
    chosen[:, 0] = chosen[:, -1] = False
    return dict(input_ids=torch.where(chosen, MASK, ids), token_type_ids=torch.zeros_like(ids),
                attention_mask=torch.ones_like(ids), mlm_labels=torch.where(chosen, ids, IGNORE_INDEX))


# ---- one pair of (minilm, transformers) models and their losses per preset ---------------------------

def roberta(fields):
    config = BertConfig(**fields)
    reference = hf.RobertaForMaskedLM(hf.RobertaConfig(**hf_fields(config)))
    batch = full_sentences(config.vocab_size)

    def reference_loss():
        return reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["mlm_labels"]).loss
    return BertForMaskedLM(config), batch, reference, reference_loss


def albert(fields):
    config = BertConfig(**fields)
    reference = hf.AlbertForPreTraining(hf.AlbertConfig(**hf_fields(config), embedding_size=config.embedding_size,
                                                        num_hidden_groups=1, inner_group_num=1))
    batch = make_pairs(config.vocab_size, BATCH, SEQ_LEN)

    def reference_loss():
        return reference(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                         attention_mask=batch["attention_mask"], labels=batch["mlm_labels"],
                         sentence_order_label=batch["nsp_labels"]).loss
    return BertForPreTraining(config), batch, reference, reference_loss


def electra(fields):
    config = ElectraConfig(**fields)
    E = config.word_size
    shared = hf_fields(config)
    discriminator = hf.ElectraForPreTraining(hf.ElectraConfig(**shared, embedding_size=E))
    gen = config.generator_config()
    generator = hf.ElectraForMaskedLM(hf.ElectraConfig(**{**shared, **hf_fields(gen)}, embedding_size=E))
    generator.electra.embeddings = discriminator.electra.embeddings  # shared, as in minilm and the paper
    generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight
    reference = torch.nn.ModuleDict({"generator": generator, "discriminator": discriminator})
    batch = full_sentences(config.vocab_size)
    masked = batch["mlm_labels"] != IGNORE_INDEX

    def reference_loss():
        out = generator(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        labels=batch["mlm_labels"])
        with torch.no_grad():
            samples = torch.multinomial(out.logits[masked].softmax(-1), 1).squeeze(-1)
        original = torch.where(masked, batch["mlm_labels"], batch["input_ids"])
        corrupted = original.clone()
        corrupted[masked] = samples
        rtd = discriminator(input_ids=corrupted, attention_mask=batch["attention_mask"],
                            labels=(corrupted != original).long()).loss
        return out.loss + config.rtd_weight * rtd
    return Electra(config), batch, reference, reference_loss


BUILDERS = {"roberta-small": roberta, "albert-small": albert, "electra-small": electra}


def make_step(model, loss_fn):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)  # parameters() lists a shared tensor once

    def step():
        loss_fn().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def bench(preset: str, repeats: int, warmup: int) -> dict[str, float]:
    fields = dict(BERT_PRESETS[preset]["model"], dropout=0.0, attn_dropout=0.0)
    torch.manual_seed(0)
    minilm, batch, reference, reference_loss = BUILDERS[preset](fields)
    steps = {"transformers": make_step(reference.train(), reference_loss),
             "minilm": make_step(minilm.train(), lambda: minilm(**batch).loss)}
    times = {name: [] for name in steps}
    for rep in range(warmup + repeats):
        for name, step in steps.items():  # interleaved: one repetition of each in turn
            elapsed = time_steps(step, 1)
            if rep >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per model (median taken)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions per model first")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, transformers {hf.__version__}, {torch.get_num_threads()} threads; "
          f"batch {BATCH} x {SEQ_LEN}, {args.repeats} repetitions")
    print(f"{'preset':<16}{'transformers ms':>16}{'minilm ms':>12}{'minilm / transformers':>24}")
    for preset in args.presets:
        medians = bench(preset, args.repeats, args.warmup)
        ratio = medians["minilm"] / medians["transformers"]
        print(f"{preset:<16}{medians['transformers']:>16.1f}{medians['minilm']:>12.1f}{ratio:>24.2f}")


if __name__ == "__main__":
    main()
