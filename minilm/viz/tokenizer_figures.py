"""Pictures of the tokenizers on one word: GPT-2's BPE merges applied step by step, and WordPiece's
greedy longest match. Each step is worked out from the tokenizer's own tables (merge ranks, vocabulary)
and checked against its encode, so the picture cannot drift from the code."""

import matplotlib.pyplot as plt  # with no display, matplotlib draws to files (its Agg backend)
from matplotlib.patches import Rectangle

from ..training.metrics_log import OKABE_ITO


def bpe_merge_steps(tokenizer, word: str) -> list[tuple[list[int], tuple[int, int] | None]]:
    """[(ids, the pair merged to reach them)]: start from the word's bytes; each step merges every
    occurrence of the adjacent pair whose merge was learned first (lowest rank), as in BPE's definition."""
    ids = [tokenizer.byte_ids[b] for b in word.encode("utf-8")]
    steps = [(ids, None)]
    while True:
        ranked = [(tokenizer.merge_rank[pair], pair) for pair in zip(ids, ids[1:]) if pair in tokenizer.merge_rank]
        if not ranked:
            break
        _, pair = min(ranked)
        merged, i = [], 0
        while i < len(ids):
            if tuple(ids[i:i + 2]) == pair:
                merged.append(tokenizer.merged_id[pair])
                i += 2
            else:
                merged.append(ids[i])
                i += 1
        ids = merged
        steps.append((ids, pair))
    if ids != tokenizer.encode_ordinary(word):
        raise AssertionError(f"the step-by-step merges of {word!r} differ from BPETokenizer.encode")
    return steps


def plot_bpe_steps(path, tokenizer, word: str) -> None:
    steps = bpe_merge_steps(tokenizer, word)
    piece = tokenizer.id_to_piece
    box_width = lambda token_id: 0.45 + 0.16 * len(piece(token_id))  # noqa: E731  wider for longer pieces
    widest = max(sum(box_width(i) + 0.1 for i in ids) for ids, _ in steps)
    fig, ax = plt.subplots(figsize=(1.1 * widest + 3.5, 0.55 * len(steps) + 1.2))
    for row, (ids, pair) in enumerate(steps):
        y = -row
        x = 0.0
        new_id = tokenizer.merged_id[pair] if pair else None
        for token_id in ids:
            width = box_width(token_id)
            colour = OKABE_ITO[1] if token_id == new_id else "#ffffff"
            ax.add_patch(Rectangle((x, y - 0.35), width, 0.7, facecolor=colour, edgecolor="#555555"))
            ax.text(x + width / 2, y, piece(token_id), ha="center", va="center", fontsize=9,
                    color="white" if token_id == new_id else "black", family="monospace")
            x += width + 0.1
        rank = f"merge rank {tokenizer.merge_rank[pair]:,}" if pair else "the word's UTF-8 bytes"
        ax.text(-0.3, y, f"step {row}: {rank}", ha="right", va="center", fontsize=8)
    _save_rows(fig, ax, path, (-3.2, widest + 0.2), len(steps),
               f"GPT-2's BPE on {word!r}: the lowest-ranked adjacent pair merges first (orange: the new "
               "token)\nĠ is the space before the word, as GPT-2's byte table writes it")


def wordpiece_steps(tokenizer, word: str) -> list[tuple[int, list[str], str]]:
    """[(start, the longer candidates not in the vocabulary, the piece taken)] for one (normalised) word:
    from each start, the longest prefix of what is left that is a vocabulary piece ('##' inside a word)."""
    vocab = set(tokenizer.vocab)
    steps, start = [], 0
    while start < len(word):
        tried = []
        for end in range(len(word), start, -1):
            candidate = ("##" if start else "") + word[start:end]
            if candidate in vocab:
                steps.append((start, tried, candidate))
                start = end
                break
            tried.append(candidate)
        else:
            raise ValueError(f"{word!r} has no piece at {start}: the tokenizer would give [UNK]")
    if [piece for _, _, piece in steps] != tokenizer.tokenize(word):
        raise AssertionError(f"the greedy steps for {word!r} differ from WordPieceTokenizer.tokenize")
    return steps


def plot_wordpiece(path, tokenizer, word: str, shown_misses: int = 4) -> None:
    steps = wordpiece_steps(tokenizer, word)
    fig, ax = plt.subplots(figsize=(9, 0.7 * len(steps) + 1.2))
    for row, (start, tried, piece) in enumerate(steps):
        y = -row
        misses = tried[-shown_misses:]  # the longest few are the least telling: show the last misses
        label = ("…, " if len(tried) > shown_misses else "") + ", ".join(misses)
        ax.text(0, y, f"from character {start}:", va="center", fontsize=9)
        ax.text(2.6, y, f"not in the vocabulary: {label or '(none)'}", va="center", fontsize=8, color="#555555",
                family="monospace")
        ax.add_patch(Rectangle((8.0, y - 0.3), 1.8, 0.6, facecolor=OKABE_ITO[0]))
        ax.text(8.9, y, piece, ha="center", va="center", color="white", fontsize=10, family="monospace")
    _save_rows(fig, ax, path, (0, 10), len(steps),
               f"WordPiece on {word!r}: from each position, the longest piece in the vocabulary "
               "('##' continues a word)")


def _save_rows(fig, ax, path, x_range: tuple[float, float], n_rows: int, title: str) -> None:
    """A picture of n_rows rows (row r at y = -r), no axes, written to path."""
    ax.set_xlim(*x_range)
    ax.set_ylim(-n_rows + 0.4, 0.8)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
