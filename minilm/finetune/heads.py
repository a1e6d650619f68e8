"""Task heads on a pretrained backbone (a Bert or a GPT): sequence classification and token tagging.

    SequenceClassifier   one vector per sequence -> dropout -> linear -> (B, num_labels)
        pooling "pooler" (Bert's default): tanh(W · h[CLS]), the vector BERT's pretraining put a head on
              (a Bert without a pooler, as RoBERTa, ELECTRA and DistilBERT, defaults to "mean")
        pooling "last" (GPT's default): the hidden state of the last non-padding token, the only
              one that has seen the whole text under causal attention
        pooling "mean": the mean hidden state over the real tokens (what sentence-transformers
              models such as all-MiniLM-L6-v2 were trained to produce; their pooler never was)
    TokenTagger          every hidden state -> dropout -> linear -> (B, T, num_labels)

The head is named `classifier` in both, so `head_names=["classifier"]` picks it for PEFT, and the
backbone sits under `backbone`, so its weights keep their own names behind that prefix.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import ConfigError

from ..model import GPT, Bert, MultiHeadAttention
from ..model.losses import IGNORE_INDEX

HEAD_NAMES = ["classifier"]


def backbone_family(backbone: nn.Module) -> str:
    """"bert" or "gpt": how inputs are built for this backbone (see minilm/finetune/encode.py)."""
    if isinstance(backbone, Bert):
        return "bert"
    if isinstance(backbone, GPT):
        return "gpt"
    raise TypeError(f"a task head needs a Bert or GPT backbone, got {type(backbone).__name__}")


def drop_lm_head(backbone: nn.Module) -> None:
    """A task head reads GPT's final hidden states, not its vocabulary logits: the LM head becomes the
    identity, so GPT.forward returns ln_f's output (B, T, C) and still runs every hook (prefix-tuning
    hooks forward). The head was tied to wte, so no weight is lost."""
    if isinstance(backbone, GPT):
        backbone.lm_head = nn.Identity()


def hidden_states(backbone: nn.Module, input_ids, attention_mask=None, token_type_ids=None):
    """The backbone's final hidden states (B, T, C), and BERT's pooled [CLS] vector (B, C) or None."""
    if isinstance(backbone, Bert):
        return backbone(input_ids, token_type_ids, attention_mask)
    hidden, _ = backbone(input_ids, attention_mask=attention_mask)  # (B, T, C): lm_head is the identity
    return hidden, None


def mean_pool(hidden, attention_mask):
    """The mean hidden state over the real tokens: hidden (B, T, C), attention_mask (B, T) 1 for real -> (B, C)."""
    mask = attention_mask.to(hidden.dtype)[:, :, None]  # (B, T, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1)


class _TaskHead(nn.Module):
    """A backbone, then dropout and a linear layer named `classifier`."""

    def __init__(self, backbone: nn.Module, num_labels: int, dropout: float = 0.1, pooling: str | None = None):
        super().__init__()
        self.family = backbone_family(backbone)
        drop_lm_head(backbone)
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(backbone.config.n_embd, num_labels)
        nn.init.normal_(self.classifier.weight, std=backbone.config.init_std)
        nn.init.zeros_(self.classifier.bias)


POOLINGS = ("pooler", "last", "mean")


class SequenceClassifier(_TaskHead):
    def __init__(self, backbone: nn.Module, num_labels: int, dropout: float = 0.1, pooling: str | None = None):
        super().__init__(backbone, num_labels, dropout)
        has_pooler = self.family == "bert" and backbone.pooler is not None  # RoBERTa, ELECTRA, DistilBERT: none
        self.pooling = pooling or ("pooler" if has_pooler else "mean" if self.family == "bert" else "last")
        if self.pooling not in POOLINGS or (self.pooling == "pooler" and not has_pooler):
            raise ConfigError(f"pooling {self.pooling!r}: choose last or mean for a GPT or a Bert without a pooler "
                              "(RoBERTa, ELECTRA, DistilBERT), pooler, last or mean for a Bert with one")

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        """input_ids (B, T), right-padded; attention_mask (B, T) 1 for real tokens; labels (B,).
        Returns logits (B, num_labels) and the cross-entropy loss if labels are given."""
        features = self.features(input_ids, attention_mask, token_type_ids)  # (B, C)
        logits = self.classifier(self.dropout(features))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return logits, loss

    def features(self, input_ids, attention_mask=None, token_type_ids=None):
        """The one vector per sequence that the head reads: (B, C)."""
        hidden, pooled = hidden_states(self.backbone, input_ids, attention_mask, token_type_ids)  # (B, T, C)
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], device=hidden.device)
        if self.pooling == "pooler":
            return pooled
        if self.pooling == "mean":
            return mean_pool(hidden, attention_mask)
        last = attention_mask.long().sum(dim=1) - 1  # (B,) index of the last real token (right padding)
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]


class TokenTagger(_TaskHead):

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        """labels (B, T): a tag id on each word's labelled sub-word, IGNORE_INDEX elsewhere.
        Returns logits (B, T, num_labels) and the mean cross-entropy over labelled positions."""
        hidden, _ = hidden_states(self.backbone, input_ids, attention_mask, token_type_ids)  # (B, T, C)
        logits = self.classifier(self.dropout(hidden))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
        return logits, loss


HEADS = {"classify": SequenceClassifier, "tag": TokenTagger}


def set_attention(backbone, attn_impl: str) -> None:
    """Both kinds compute the same numbers (tests/test_attention.py); the fused one is faster."""
    backbone.config.attn_impl = attn_impl
    for module in backbone.modules():
        if isinstance(module, MultiHeadAttention):
            module.attn_impl = attn_impl
