"""BERT's pretraining input: sentence pairs [CLS] A [SEP] B [SEP], half of them with a random B, then masked.
ALBERT's variant (objective="sop"): B always follows A, and half of the pairs are swapped.

The corpus is a list of documents (Shakespeare: one play each), each a list of lines (the "sentences").
It is tokenized once into three flat arrays (``TokenizedDocuments``, cached on disk), and every batch is
then cut out of them with a few numpy operations over the whole batch, no Python loop per sequence:

    1. target length: max_seq_len - 3 (room for [CLS] and two [SEP]), or, with probability
       short_seq_prob, a random length in [2, max_seq_len - 3], so the model also sees short inputs;
    2. A starts at a random line; the chunk runs over whole lines until it holds the target length;
       the A/B split is a random line boundary inside the chunk (mid-line if the chunk is one line);
    3. B is the rest of the chunk (label 0, "is next"), or, with probability 1/2, as many tokens taken
       from a random line of *another* document (label 1, "random");
    4. the pair is cut to the target length, longest side first; A loses tokens at its start and B at
       its end, so the junction, where the next-sentence evidence is, always survives.

Sentence-order prediction (ALBERT): steps 1, 2 and 4 as above, B always the rest of the chunk, and with
probability 1/2 the two segments are swapped, [CLS] B [SEP] A [SEP] (label 1, "swapped"). Both segments
come from the same place of the same document, so a topic difference gives nothing away: the model has
to read the order itself.

Masking is dynamic: ``mask_pairs`` (minilm/training/bert_task.py) draws a new 80/10/10 mask each time
a sequence is drawn. All randomness comes from the ``torch.Generator`` passed in, which is what makes
training resume exactly. docs/bert_pretraining.md has the details and the reasons.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.atomic import write_file_atomic
from common.errors import DataError


NOT_NEXT, IS_NEXT = 1, 0  # NSP labels, as in BertForPreTraining: 0 means B really follows A
SWAPPED, IN_ORDER = 1, 0  # SOP labels, in the same place (the same head reads them)
OBJECTIVES = ("nsp", "sop")


@dataclass
class TokenizedDocuments:
    """Every document's tokens back to back, with where each line and each document starts.

    tokens      (N,)    token ids, all documents concatenated
    line_starts (L+1,)  offset in ``tokens`` of each line's first token; line_starts[L] = N
    doc_lines   (D+1,)  index of each document's first line; doc_lines[D] = L
    """
    tokens: np.ndarray
    line_starts: np.ndarray
    doc_lines: np.ndarray

    @property
    def num_documents(self) -> int:
        return len(self.doc_lines) - 1

    def document_tokens(self, d: int) -> np.ndarray:
        start, end = self.line_starts[self.doc_lines[d]], self.line_starts[self.doc_lines[d + 1]]
        return self.tokens[start:end]


def tokenize_documents(documents: list[str], tokenizer) -> TokenizedDocuments:
    """Encode each non-empty line of each document; lines and documents with no tokens are dropped."""
    pieces, line_lengths, doc_line_counts = [], [], []
    for text in documents:
        n_lines = 0
        for line in text.splitlines():
            ids = tokenizer.encode(line) if line.strip() else []
            if ids:
                pieces.append(ids)
                line_lengths.append(len(ids))
                n_lines += 1
        if n_lines:
            doc_line_counts.append(n_lines)
    dtype = np.uint16 if tokenizer.vocab_size <= 2**16 else np.uint32
    tokens = np.fromiter((i for ids in pieces for i in ids), dtype=dtype, count=sum(line_lengths))
    return TokenizedDocuments(tokens=tokens,
                              line_starts=np.concatenate([[0], np.cumsum(line_lengths)]).astype(np.int64),
                              doc_lines=np.concatenate([[0], np.cumsum(doc_line_counts)]).astype(np.int64))


def cached_tokenize_documents(documents: list[str], tokenizer, fingerprint: str, folder) -> TokenizedDocuments:
    """``tokenize_documents``, stored as ``folder/<key>.npz`` keyed on the tokenizer fingerprint and the
    texts, so a second run with the same corpus and tokenizer only reads the file."""
    digest = hashlib.sha256(f"bert-docs-v1\0{fingerprint}\0".encode())
    for text in documents:
        digest.update(text.encode("utf-8") + b"\0")
    path = Path(folder) / f"{digest.hexdigest()[:16]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            return TokenizedDocuments(tokens=f["tokens"], line_starts=f["line_starts"], doc_lines=f["doc_lines"])
    docs = tokenize_documents(documents, tokenizer)
    arrays = dict(tokens=docs.tokens, line_starts=docs.line_starts, doc_lines=docs.doc_lines)
    write_file_atomic(path, lambda tmp: _savez(tmp, arrays))  # a reader sees the whole file or none
    return docs


# ---- corpora -> documents ---------------------------------------------------------------------------

def split_documents_by_tail(documents: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """Hold out the last ``val_fraction`` of every document's lines (cut at the next blank line, so a
    speech stays whole). Validation then has as many documents as training, and NSP negatives exist."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction={val_fraction}: must be strictly between 0 and 1, e.g. 0.1")
    train, val = [], []
    for text in documents:
        lines = text.splitlines()
        cut = int(len(lines) * (1 - val_fraction))
        while cut < len(lines) and lines[cut].strip():
            cut += 1
        train.append("\n".join(lines[:cut]))
        val.append("\n".join(lines[cut:]))
    return train, val


def split_documents_evenly(documents: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """Hold out whole documents, ``round(n * val_fraction)`` of them (at least 2, for NSP negatives),
    spread evenly through the file."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction={val_fraction}: must be strictly between 0 and 1, e.g. 0.1")
    n_val = max(2, round(len(documents) * val_fraction))
    if len(documents) - n_val < 2:
        raise DataError(f"{len(documents)} document(s) cannot give 2 for training and {n_val} for validation: "
                        "next-sentence prediction draws its negatives from other documents. Separate "
                        "documents with blank lines, and give at least 4")
    val_positions = {int((i + 0.5) * len(documents) / n_val) for i in range(n_val)}
    train = [d for i, d in enumerate(documents) if i not in val_positions]
    val = [d for i, d in enumerate(documents) if i in val_positions]
    return train, val


def read_documents(path) -> list[str]:
    """A UTF-8 text file as documents: blank lines separate them."""
    from data.prepare import read_text_file
    text = read_text_file(path)
    return [doc.strip() for doc in re.split(r"\n\s*\n", text) if doc.strip()]


# ---- pairs --------------------------------------------------------------------------------------------

class PairSampler:
    """Draws batches of NSP (or SOP) pairs from one split's TokenizedDocuments (see the module docstring)."""

    def __init__(self, docs: TokenizedDocuments, max_seq_len: int, cls_id: int, sep_id: int, pad_id: int,
                 short_seq_prob: float = 0.1, split: str = "corpus", objective: str = "nsp"):
        if objective not in OBJECTIVES:
            raise DataError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        self.objective = objective
        if max_seq_len < 5:
            raise DataError(f"max_seq_len={max_seq_len} is too short: [CLS] A [SEP] B [SEP] needs at least 5")
        if docs.num_documents < 2 and objective == "nsp":
            raise DataError(f"the {split} split has {docs.num_documents} document(s) with text; next-sentence "
                            "prediction needs at least 2, because a random B comes from another document. "
                            "Separate documents with blank lines in --data")
        if len(docs.tokens) < max_seq_len:
            raise DataError(f"the {split} split has only {len(docs.tokens)} tokens, less than one sequence of "
                            f"max_seq_len={max_seq_len}; use a longer text or a smaller --max_seq_len")
        self.docs, self.max_seq_len, self.short_seq_prob = docs, max_seq_len, short_seq_prob
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id
        starts, doc_lines = docs.line_starts, docs.doc_lines
        n_lines = len(starts) - 1
        self.doc_of_line = np.repeat(np.arange(docs.num_documents), np.diff(doc_lines))  # (L,)
        self.line_doc_end = starts[doc_lines[1:]][self.doc_of_line]  # (L,) where each line's document ends
        # A needs one token and B one more from the same document.
        self.first_lines = np.flatnonzero(self.line_doc_end - starts[:n_lines] >= 2)  # (L',)
        if len(self.first_lines) == 0:
            raise DataError(f"no document of the {split} split has two tokens; use a longer text")

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Unmasked pairs: input_ids, token_type_ids, attention_mask (B, T) and nsp_labels (B,), which
        hold the SOP labels with objective="sop"."""
        starts, doc_lines = self.docs.line_starts, self.docs.doc_lines
        u = torch.rand((batch_size, 6), generator=generator, dtype=torch.float64).numpy()  # every draw, at once
        budget = self.max_seq_len - 3
        target = np.where(u[:, 0] < self.short_seq_prob, 2 + (u[:, 1] * (budget - 1)).astype(np.int64), budget)

        # A's first line, and the chunk of whole lines from there that reaches the target length.
        line_a = self.first_lines[(u[:, 2] * len(self.first_lines)).astype(np.int64)]  # (B,)
        doc_a = self.doc_of_line[line_a]
        a_start = starts[line_a]
        end_line = np.searchsorted(starts, a_start + target, side="left")  # first line starting past the target
        end_line = np.minimum(np.maximum(end_line, line_a + 1), doc_lines[doc_a + 1])
        chunk_end = starts[end_line]
        # Split at a random line boundary inside the chunk, or inside the one line when there is none.
        n_boundaries = end_line - line_a - 1
        at_boundary = starts[line_a + 1 + (u[:, 3] * np.maximum(n_boundaries, 1)).astype(np.int64)]
        mid_line = a_start + 1 + (u[:, 3] * (np.minimum(target, chunk_end - a_start) - 1)).astype(np.int64)
        split = np.where(n_boundaries > 0, at_boundary, mid_line)
        len_a, len_b = split - a_start, chunk_end - split

        flipped = u[:, 4] < 0.5  # NSP: B is random; SOP: A and B swap places
        if self.objective == "sop":
            keep_a, keep_b = truncate_longest_first(len_a, len_b, target)
            a_start, b_start = split - keep_a, split
            first, len_first = np.where(flipped, b_start, a_start), np.where(flipped, keep_b, keep_a)
            second, len_second = np.where(flipped, a_start, b_start), np.where(flipped, keep_a, keep_b)
            return self._assemble(first, len_first, second, len_second, flipped)
        # Random B: a line of another document, drawn uniformly over all lines outside doc_a.
        is_random = flipped
        lines_in_a = doc_lines[doc_a + 1] - doc_lines[doc_a]
        other = (u[:, 5] * (len(starts) - 1 - lines_in_a)).astype(np.int64)
        other += np.where(other >= doc_lines[doc_a], lines_in_a, 0)  # skip over doc_a's lines
        b_start = np.where(is_random, starts[other], split)
        len_b = np.where(is_random, np.minimum(len_b, self.line_doc_end[other] - b_start), len_b)

        keep_a, keep_b = truncate_longest_first(len_a, len_b, target)
        return self._assemble(split - keep_a, keep_a, b_start, keep_b, is_random)

    def _assemble(self, a_start, len_a, b_start, len_b, label_one) -> dict[str, torch.Tensor]:
        """[CLS] A [SEP] B [SEP] [PAD]..., built for the whole batch by index arithmetic."""
        pos = np.arange(self.max_seq_len)[None, :]  # (1, T)
        len_a, len_b = len_a[:, None], len_b[:, None]  # (B, 1)
        in_a = (pos >= 1) & (pos <= len_a)
        in_b = (pos >= len_a + 2) & (pos < len_a + 2 + len_b)
        source = np.where(in_a, a_start[:, None] + pos - 1, b_start[:, None] + pos - len_a - 2)  # (B, T)
        ids = np.where(in_a | in_b, self.docs.tokens[np.where(in_a | in_b, source, 0)], self.pad_id)
        ids[:, 0] = self.cls_id
        is_sep = (pos == len_a + 1) | (pos == len_a + len_b + 2)
        ids = np.where(is_sep, self.sep_id, ids)
        segment_b = (pos >= len_a + 2) & (pos <= len_a + len_b + 2)  # B and its closing [SEP]
        real = pos <= len_a + len_b + 2
        return {
            "input_ids": torch.from_numpy(ids.astype(np.int64)),
            "token_type_ids": torch.from_numpy(segment_b.astype(np.int64)),
            "attention_mask": torch.from_numpy(real.astype(np.int64)),
            "nsp_labels": torch.from_numpy(label_one.astype(np.int64)),  # 1: NOT_NEXT (NSP) or SWAPPED (SOP)
        }


def truncate_longest_first(len_a: np.ndarray, len_b: np.ndarray, budget: np.ndarray):
    """Lengths kept when tokens are removed one at a time from the longer side until the pair fits
    ``budget``: the shorter side stays whole if it fits in half the budget, otherwise both get half."""
    shorter = np.minimum(len_a, len_b)
    keep_shorter = np.where(2 * shorter <= budget, shorter, budget // 2)
    keep_longer = budget - keep_shorter
    a_is_longer = len_a > len_b
    fits = len_a + len_b <= budget
    keep_a = np.where(fits, len_a, np.where(a_is_longer, keep_longer, keep_shorter))
    keep_b = np.where(fits, len_b, np.where(a_is_longer, keep_shorter, keep_longer))
    return keep_a, keep_b


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append .npz to a name
        np.savez(f, **arrays)
