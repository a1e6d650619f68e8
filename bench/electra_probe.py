"""Why ELECTRA's discriminator stays at its baseline early on: how hard the replacements are.

    python -m bench.electra_probe                 # under a minute on 2 cores
    python -m bench.electra_probe --steps 300

Trains the `electra-small` discriminator alone (no generator) for --steps steps on 32 x 128 tokens of the
plays, 15% of them replaced by tokens drawn either uniformly from the vocabulary (mostly rare pieces, out
of place anywhere) or from the corpus's unigram distribution (common pieces, which is what an untrained
generator samples). Prints the detection loss and accuracy next to "never replaced" (the share of original
tokens) every --every steps. docs/successors.md, "Results", reads the two lines.
"""

import argparse

import torch

from data.shakespeare import shakespeare_splits
from minilm.model import ElectraConfig, ElectraDiscriminator
from minilm.model.losses import rtd_loss
from minilm.training.presets import BERT_PRESETS
from tokenizer import WordPieceTokenizer


def replaced_batch(ids, draw, generator, batch=32, length=128, share=0.15):
    """(corrupted ids (B, T), labels (B, T): 1 where a token was replaced by a different one)."""
    starts = torch.randint(0, len(ids) - length, (batch,), generator=generator)
    original = torch.stack([ids[s:s + length] for s in starts])  # (B, T)
    chosen = torch.rand(original.shape, generator=generator) < share
    corrupted = torch.where(chosen, draw(original.shape, generator), original)
    return corrupted, (corrupted != original).long()


def probe(ids, vocab_size: int, draw, steps: int, every: int, name: str) -> None:
    torch.manual_seed(0)
    config = ElectraConfig(**{**BERT_PRESETS["electra-small"]["model"], "vocab_size": vocab_size})
    model = ElectraDiscriminator(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)  # the preset's learning rate
    generator = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        corrupted, labels = replaced_batch(ids, draw, generator)
        everywhere = torch.ones_like(corrupted)
        logits = model(corrupted, attention_mask=everywhere)  # (B, T)
        loss = rtd_loss(logits, labels, everywhere)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % every == 0 or step == steps:
            accuracy = ((logits > 0).long() == labels).float().mean().item()
            print(f"{name:8s} step {step:4d} | loss {loss.item():.4f} | accuracy {accuracy:.1%} | "
                  f"never replaced {1 - labels.float().mean().item():.1%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=30)
    args = parser.parse_args()
    text = shakespeare_splits()[0][:400_000]  # the start of the plays' training text
    tokenizer = WordPieceTokenizer.train(text, 4096)
    ids = torch.tensor(tokenizer.encode(text))  # (N,)
    V = tokenizer.vocab_size
    unigram = torch.bincount(ids, minlength=V).float()
    probe(ids, V, lambda shape, g: torch.randint(5, V, shape, generator=g), args.steps, args.every, "uniform")
    probe(ids, V, lambda shape, g: torch.multinomial(unigram, shape.numel(), replacement=True, generator=g)
          .view(shape), args.steps, args.every, "unigram")


if __name__ == "__main__":
    main()
