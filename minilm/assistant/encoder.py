"""Sentences to vectors: the mean of a BERT's final hidden states over the real tokens, made unit length.

all-MiniLM-L6-v2 was trained for exactly this (sentence-transformers): two texts that mean the same
get vectors with a high cosine similarity, whatever words they use. With unit vectors u, v the cosine
is the dot product, so a whole index is scored with one matrix product:

    u = mean_t h_t / ‖mean_t h_t‖          scores = U · q,   U: (N, C) the indexed questions, q: (C,)
"""

import torch
import torch.nn.functional as F

from common.errors import ConfigError

from ..finetune.checkpoints import base_folder, load_base
from ..finetune.heads import hidden_states, mean_pool


def open_encoder(folder, spec: str) -> "SentenceEncoder":
    """The SentenceEncoder of a BERT folder (a Hugging Face folder, a train_bert.py or finetune.py checkpoint or
    out_dir); spec: how the user named it, for the error message."""
    base = load_base(base_folder(str(folder)), alias=None)
    if not hasattr(base.tokenizer, "encode_plus"):
        raise ConfigError(f"--base {spec}: the sentence encoder must be a BERT with a WordPiece tokenizer")
    return SentenceEncoder(base.backbone, base.tokenizer)


class SentenceEncoder:
    def __init__(self, backbone, tokenizer, max_length: int = 64, batch_size: int = 64):
        """backbone: a Bert (e.g. minilm-l6's); tokenizer: its WordPiece tokenizer."""
        self.backbone, self.tokenizer = backbone.eval(), tokenizer
        self.max_length, self.batch_size = max_length, batch_size

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """(N, C) unit vectors, one per text."""
        vectors = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._batch(texts[start:start + self.batch_size])
            hidden, _ = hidden_states(self.backbone, **batch)  # (B, T, C)
            vectors.append(F.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1))
        return torch.cat(vectors)

    def _batch(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """[CLS] text [SEP], right-padded: input_ids, attention_mask, token_type_ids, each (B, T)."""
        encoded = [self.tokenizer.encode_plus(text, max_length=self.max_length, truncation=True)["input_ids"]
                   for text in texts]
        T = max(len(ids) for ids in encoded)
        input_ids = torch.tensor([ids + [self.tokenizer.pad_id] * (T - len(ids)) for ids in encoded])
        attention_mask = torch.tensor([[1] * len(ids) + [0] * (T - len(ids)) for ids in encoded])
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": torch.zeros_like(input_ids)}
