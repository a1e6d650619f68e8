"""Tiny bases and data files for the finetune.py tests: a 2-layer BERT with a hand-made WordPiece
vocabulary and a 2-layer character GPT, saved as train_*.py checkpoints (model + tokenizer/)."""

import torch

from minilm import GPT, Bert, BertConfig, GPTConfig
from minilm.training.checkpoint import save_checkpoint
from tokenizer import CharTokenizer, WordPieceTokenizer

WORDS = ["the", "a", "film", "movie", "plot", "good", "great", "fine", "bad", "awful", "dull", "un", "##happy",
         "##s", "is", "was", "very", "john", "paris", "lives", "in", ".", ","]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS

POSITIVE = ["good", "great", "fine"]
NEGATIVE = ["bad", "awful", "dull"]


def tiny_wordpiece() -> WordPieceTokenizer:
    return WordPieceTokenizer(VOCAB, lowercase=True)


def tiny_bert(seed: int = 0, dropout: float = 0.0, init_std: float = 0.3) -> Bert:
    # A random base with the usual init_std 0.02 barely mixes tokens (its [CLS] vector hardly depends on
    # the words), so frozen-base methods (head only, adapters) have nothing to learn from; 0.3 mixes them.
    torch.manual_seed(seed)
    return Bert(BertConfig(vocab_size=len(VOCAB), block_size=32, n_layer=2, n_head=2, n_embd=32, n_inner=64,
                           dropout=dropout, attn_dropout=dropout, init_std=init_std))


def tiny_gpt(vocab_size: int, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32))


def save_base(folder, model, tokenizer):
    """A checkpoint folder as train_gpt.py / train_bert.py write it."""
    config = {"model_class": type(model).__name__, "model": model.config.to_dict()}
    save_checkpoint(folder, model, config, None, lambda tmp: tokenizer.save(tmp / "tokenizer"))
    return folder


def save_bert_base(folder, dropout: float = 0.0, seed: int = 0):
    return save_base(folder, tiny_bert(seed=seed, dropout=dropout), tiny_wordpiece())


def save_gpt_base(folder, text: str = "the film was good. the plot was bad, very dull.\n"):
    tokenizer = CharTokenizer.train(text)
    return save_base(folder, tiny_gpt(tokenizer.vocab_size), tokenizer)


def sentiment_rows(n: int) -> list[tuple[str, str]]:
    """(text, label) pairs a tiny model separates within a few dozen steps: the adjective decides."""
    subjects = ["the film", "the movie", "the plot", "a film", "a movie"]
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        adjective = (POSITIVE if positive else NEGATIVE)[(i // 2) % 3]
        verb = ["is", "was", "is very", "was very"][(i // 6) % 4]
        rows.append((f"{subjects[(i // 3) % 5]} {verb} {adjective}", "pos" if positive else "neg"))
    return rows


def write_csv(path, rows, header=("text", "label")):
    lines = [",".join(header)] + [f'"{text}",{label}' for text, label in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
