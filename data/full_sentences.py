"""RoBERTa's pretraining input, FULL-SENTENCES: one segment of contiguous text, no sentence pairs.

RoBERTa dropped next-sentence prediction and, with it, the pairs. Each sequence is

    [CLS] t_s t_s+1 ... t_s+T-3 [SEP]        T = max_seq_len, every position a real token

where s is the first token of a random line and the tokens run on across a document's end, with one
[SEP] between documents (RoBERTa's "extra separator token"). There is no padding and no segment B, so
every position can be masked and none is wasted. Masking stays dynamic (minilm/training/bert_task.py).
"""

import numpy as np
import torch

from common.errors import DataError

from .bert_pairs import TokenizedDocuments


class FullSentenceSampler:
    """Draws batches of full-length single segments from one split's TokenizedDocuments."""

    def __init__(self, docs: TokenizedDocuments, max_seq_len: int, cls_id: int, sep_id: int, split: str = "corpus"):
        if max_seq_len < 3:
            raise DataError(f"max_seq_len={max_seq_len} is too short: [CLS] text [SEP] needs at least 3")
        doc_ends = docs.line_starts[docs.doc_lines[1:]]  # (D,) where each document's tokens end
        # The stream: every document's tokens followed by a [SEP].
        self.stream = np.insert(docs.tokens, doc_ends, sep_id)  # (N + D,)
        # Where each line starts in the stream: every [SEP] before it shifts it by one.
        doc_of_line = np.repeat(np.arange(docs.num_documents), np.diff(docs.doc_lines))
        line_starts = docs.line_starts[:-1] + doc_of_line  # (L,)
        self.body = max_seq_len - 2  # tokens between [CLS] and the closing [SEP]
        self.starts = line_starts[line_starts + self.body <= len(self.stream)]
        if len(self.starts) == 0:
            raise DataError(f"the {split} split has {len(self.stream)} tokens (separators included), less than "
                            f"one sequence of max_seq_len={max_seq_len}; use a longer text or a smaller --max_seq_len")
        self.docs, self.max_seq_len, self.cls_id, self.sep_id = docs, max_seq_len, cls_id, sep_id

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Unmasked sequences: input_ids, token_type_ids (all 0) and attention_mask (all 1), each (B, T)."""
        u = torch.rand(batch_size, generator=generator, dtype=torch.float64).numpy()
        start = self.starts[(u * len(self.starts)).astype(np.int64)]  # (B,)
        body = self.stream[start[:, None] + np.arange(self.body)[None, :]]  # (B, T - 2)
        cls = np.full((batch_size, 1), self.cls_id)
        sep = np.full((batch_size, 1), self.sep_id)
        ids = torch.from_numpy(np.concatenate([cls, body, sep], axis=1).astype(np.int64))  # (B, T)
        return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": torch.ones_like(ids)}
