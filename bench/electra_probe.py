"""Why ELECTRA's discriminator stays at its baseline: how hard the replacements are, and what a curriculum does.

    python -m bench.electra_probe                          # 22 minutes on one core of busy ones
    python -m bench.electra_probe --steps 300 --probes uniform unigram

Trains the `electra-small` discriminator alone (no generator) on 32 x 128 tokens of the plays, 15% of them
replaced by tokens drawn

    uniform     uniformly from the vocabulary: mostly rare pieces, out of place anywhere;
    unigram     from the corpus's unigram distribution: common pieces, what a generator that has learned the
                word frequencies (after a few dozen steps) samples;
    curriculum  uniform at first, a share falling linearly to 0 at --curriculum steps, unigram after: the
                curriculum `train_bert.py --rtd_curriculum_iters` gives the real generator's samples.

Every --every steps it prints, averaged over the last --every batches: the detection accuracy minus the
"never replaced" share, the loss minus the entropy of the replaced share (what a constant guess scores), and
the AUC (0.5: no clue; minilm/training/electra_task.py). A model that has learned nothing scores 0, 0 and 0.5.
Last, a bigram detector on held-out text with unigram replacements: a token is suspicious when it and its
neighbours rarely follow each other in the training text (pointwise mutual information with both). It needs
no training, and it shows how much a model could learn from neighbouring pairs alone.
docs/successors.md, "Why ELECTRA's discriminator does not learn here", reads the lines.
"""

import argparse
import math

import torch

from data.shakespeare import shakespeare_splits
from minilm.model import ElectraConfig, ElectraDiscriminator
from minilm.model.losses import rtd_loss
from minilm.training.electra_task import auc
from minilm.training.presets import BERT_PRESETS
from tokenizer import WordPieceTokenizer

SHARE = 0.15  # of the tokens replaced, as masked-LM's 15%


def replaced_batch(ids, draw, generator, batch=32, length=128):
    """(corrupted ids (B, T), labels (B, T): 1 where a token was replaced by a different one)."""
    starts = torch.randint(0, len(ids) - length, (batch,), generator=generator)
    original = torch.stack([ids[s:s + length] for s in starts])  # (B, T)
    chosen = torch.rand(original.shape, generator=generator) < SHARE
    corrupted = torch.where(chosen, draw(original.shape, generator), original)
    return corrupted, (corrupted != original).long()


def drawers(unigram: torch.Tensor, curriculum_steps: int):
    """probe name -> draw(step) -> draw(shape, generator): the replacement tokens at a step."""
    V = len(unigram)

    def uniform(shape, g):
        return torch.randint(5, V, shape, generator=g)  # ids 0-4 are the special tokens

    def frequent(shape, g):
        return torch.multinomial(unigram, shape.numel(), replacement=True, generator=g).view(shape)

    def mixed(step):
        share = max(0.0, 1.0 - step / curriculum_steps)  # of uniform replacements
        return lambda shape, g: torch.where(torch.rand(shape, generator=g) < share, uniform(shape, g),
                                            frequent(shape, g))

    return {"uniform": lambda step: uniform, "unigram": lambda step: frequent, "curriculum": mixed}


def binary_entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def probe(ids, vocab_size: int, draw_at, steps: int, every: int, name: str) -> None:
    torch.manual_seed(0)
    config = ElectraConfig(**{**BERT_PRESETS["electra-small"]["model"], "vocab_size": vocab_size})
    model = ElectraDiscriminator(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)  # the preset's learning rate
    generator = torch.Generator().manual_seed(0)
    recent = []  # (accuracy - never replaced, loss - entropy, AUC) of the last batches
    for step in range(1, steps + 1):
        corrupted, labels = replaced_batch(ids, draw_at(step), generator)
        everywhere = torch.ones_like(corrupted)
        logits = model(corrupted, attention_mask=everywhere)  # (B, T)
        loss = rtd_loss(logits, labels, everywhere)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        replaced = labels.float().mean().item()
        recent.append((((logits > 0).long() == labels).float().mean().item() - (1 - replaced),
                       loss.item() - binary_entropy(replaced), auc(logits.detach().flatten(), labels.flatten())))
        if step % every == 0 or step == steps:
            gain, excess, area = (sum(values) / len(values) for values in zip(*recent))
            print(f"{name:10s} step {step:5d} | accuracy - never replaced {gain:+.2%} | "
                  f"loss - entropy {excess:+.4f} | AUC {area:.3f}", flush=True)
            recent = []


def bigram_detector(ids, vocab_size: int, smoothing: float = 0.1) -> None:
    """The AUC of a count-based detector on the last 10% of the tokens, trained on the first 90%."""
    split = int(0.9 * len(ids))
    train, test = ids[:split], ids[split:]
    unigram = (torch.bincount(train, minlength=vocab_size).double() + 1)
    unigram = unigram / unigram.sum()  # (V,)
    pairs = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)  # pairs[a, b]: how often b follows a
    pairs.index_put_((train[:-1], train[1:]), torch.ones(split - 1, dtype=torch.float64), accumulate=True)
    follows = pairs.sum(dim=1)  # (V,)

    def pmi(a, b):  # log P(b | a) - log P(b), P(b | a) smoothed towards P(b)
        return torch.log((pairs[a, b] + smoothing * vocab_size * unigram[b]) /
                         (follows[a] + smoothing * vocab_size)) - torch.log(unigram[b])

    g = torch.Generator().manual_seed(0)
    corrupted = test.clone()
    chosen = torch.rand(len(test), generator=g) < SHARE
    corrupted[chosen] = torch.multinomial(unigram.float(), int(chosen.sum()), replacement=True, generator=g)
    labels = (corrupted != test)[1:-1].long()
    left, middle, right = corrupted[:-2], corrupted[1:-1], corrupted[2:]
    suspicion = -(pmi(left, middle) + pmi(middle, right))  # pairs that rarely occur: likely replaced
    print(f"bigram detector on {len(labels):,} held-out tokens, unigram replacements: AUC "
          f"{auc(suspicion, labels):.3f} (trained on {split:,} tokens, no gradient steps)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--curriculum", type=int, default=400, help="steps until the uniform share reaches 0")
    parser.add_argument("--probes", nargs="+", default=["uniform", "unigram", "curriculum"],
                        choices=["uniform", "unigram", "curriculum"])
    parser.add_argument("--chars", type=int, default=400_000, help="of the plays' training text to use")
    parser.add_argument("--threads", type=int, default=1, help="the figures in docs/successors.md used one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    text = shakespeare_splits()[0][:args.chars]  # the start of the plays' training text
    tokenizer = WordPieceTokenizer.train(text, 4096)
    ids = torch.tensor(tokenizer.encode(text))  # (N,)
    V = tokenizer.vocab_size
    draw = drawers(torch.bincount(ids, minlength=V).float(), args.curriculum)
    for name in args.probes:
        probe(ids, V, draw[name], args.steps, args.every, name)
    bigram_detector(ids, V)


if __name__ == "__main__":
    main()
