"""How much next-sentence evidence the pairs hold, measured without a neural network.

A "random B" comes from another play, so the strongest cue is the play itself: its cast and its words.
This script scores the validation pairs of train_bert.py with a naive-Bayes play identifier fitted on the
training split (word-piece counts per play, add-0.1 smoothing):

    P(play | A) and P(play | B)          each a softmax over plays of the summed log-probabilities of the pieces
    same = sum over plays of P(play | A) * P(play | B)

and predicts "B follows A" when ``same`` exceeds the best threshold. It also scores the junction alone (how
likely B's first piece is after A's last, from training bigrams), and both together. Unmasked pairs and
thresholds picked on the pairs scored: a reference for what simple cues give, not a bound on what a
model can learn.

    python -m bench.nsp_ceiling --max_seq_len 128 256 512
"""

import argparse

import numpy as np
import torch

from data.bert_corpus import DataConfig, prepare_data
from data.bert_pairs import IS_NEXT


def play_log_probs(docs, vocab_size: int) -> np.ndarray:
    """(n_plays, vocab) log P(piece | play) from the training split, add-0.1 smoothed."""
    counts = np.full((docs.num_documents, vocab_size), 0.1)
    for d in range(docs.num_documents):
        start, end = docs.line_starts[docs.doc_lines[d]], docs.line_starts[docs.doc_lines[d + 1]]
        counts[d] += np.bincount(docs.tokens[start:end], minlength=vocab_size)
    return np.log(counts / counts.sum(1, keepdims=True))


def play_posterior(ids: np.ndarray, keep: np.ndarray, log_p: np.ndarray) -> np.ndarray:
    """(pairs, n_plays) P(play | the kept pieces of each row), uniform prior over plays."""
    scores = np.stack([log_p[:, row[mask]].sum(1) for row, mask in zip(ids, keep)])
    scores -= scores.max(1, keepdims=True)
    posterior = np.exp(scores)
    return posterior / posterior.sum(1, keepdims=True)


def best_threshold_accuracy(score: np.ndarray, is_next: np.ndarray) -> float:
    return max(((score > t) == is_next).mean() for t in np.quantile(score, np.linspace(0, 1, 201)))


def junction_score(ids, len_a, tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """log P(B's first piece | A's last piece) - log P(B's first piece), from training bigrams."""
    bigrams = np.zeros((vocab_size, vocab_size))
    np.add.at(bigrams, (tokens[:-1], tokens[1:]), 1)
    unigram = (np.bincount(tokens, minlength=vocab_size) + 1.0) / (len(tokens) + vocab_size)
    cond = (bigrams + unigram[None]) / (bigrams.sum(1, keepdims=True) + 1.0)
    rows = np.arange(len(ids))
    a_last, b_first = ids[rows, len_a], ids[rows, len_a + 2]  # [CLS] a_1..a_n [SEP] b_1
    return np.log(cond[a_last, b_first]) - np.log(unigram[b_first])


def combined_accuracy(features: list[np.ndarray], is_next: np.ndarray) -> float:
    """A logistic regression on the features, fitted on the first half of the pairs, scored on the second."""
    x = torch.tensor(np.stack(features, 1), dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(is_next, dtype=torch.float64)
    half = len(y) // 2
    weights = torch.zeros(x.size(1) + 1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights], max_iter=100)

    def closure():
        optimizer.zero_grad()
        logits = x[:half] @ weights[:-1] + weights[-1]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[:half])
        loss.backward()
        return loss

    optimizer.step(closure)
    predicted = (x[half:] @ weights[:-1] + weights[-1]) > 0
    return (predicted == y[half:].bool()).double().mean().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max_seq_len", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--pairs", type=int, default=4000)
    args = parser.parse_args()
    for max_seq_len in args.max_seq_len:
        tokenizer, samplers, _, _ = prepare_data(DataConfig(max_seq_len=max_seq_len))  # train_bert.py's data
        train_docs, V = samplers["train"].docs, tokenizer.vocab_size
        pairs = samplers["val"].sample(args.pairs, torch.Generator().manual_seed(0))
        ids, types, real = (pairs[k].numpy() for k in ("input_ids", "token_type_ids", "attention_mask"))
        is_next = pairs["nsp_labels"].numpy() == IS_NEXT
        words = (ids != tokenizer.cls_id) & (ids != tokenizer.sep_id) & (real == 1)
        log_p = play_log_probs(train_docs, V)
        same = (play_posterior(ids, words & (types == 0), log_p) * play_posterior(ids, words & (types == 1), log_p))
        len_a = ((types == 0) & (real == 1)).sum(1) - 2  # [CLS] and the first [SEP] are type 0 too; so is padding
        junction = junction_score(ids, len_a, train_docs.tokens.astype(np.int64), V)
        same_log_odds = np.log(same.sum(1) + 1e-12) - np.log1p(-same.sum(1) + 1e-12)
        print(f"pairs of {max_seq_len} tokens: same play (naive Bayes) "
              f"{best_threshold_accuracy(same.sum(1), is_next):.1%}, junction bigram "
              f"{best_threshold_accuracy(junction, is_next):.1%}, both (logistic regression, held-out half) "
              f"{combined_accuracy([same_log_odds, junction], is_next):.1%}; always 'is next' {is_next.mean():.1%}")


if __name__ == "__main__":
    main()
