"""BERT: word + position + token-type embeddings, a stack of post-LN bidirectional blocks, a tanh
pooler; and BertForPreTraining, which adds the masked-LM and next-sentence heads.

DistilBERT is this Bert without the token-type embeddings (BertConfig.type_vocab_size=0) and without
the pooler (pooler=False): word + position embeddings, the same blocks, the hidden states."""

from dataclasses import dataclass

import torch
import torch.nn as nn

from .attention import KVCache
from .blocks import Block, init_weights
from .config import BertConfig
from .losses import IGNORE_INDEX, mlm_loss, nsp_loss
from .transformer import TransformerModel


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.n_embd)
        self.position = nn.Embedding(config.block_size, config.n_embd)
        # Segment A or B; DistilBERT (type_vocab_size 0) has no segments.
        self.token_type = nn.Embedding(config.type_vocab_size, config.n_embd) if config.type_vocab_size else None
        self.ln = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids, token_type_ids, past: int = 0):  # (B, T) ids -> (B, T, C)
        T = input_ids.size(1)
        positions = torch.arange(past, past + T, device=input_ids.device)[None]  # (1, T)
        x = self.word(input_ids) + self.position(positions)
        if self.token_type is not None:
            x = x + self.token_type(token_type_ids)
        return self.dropout(self.ln(x))


class Bert(TransformerModel):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.blocks = nn.ModuleList(Block(config, causal=False, pre_ln=False, layer=i) for i in range(config.n_layer))
        # Reads the [CLS] position; DistilBERT (pooler=False) has none.
        self.pooler = nn.Linear(config.n_embd, config.n_embd, bias=config.bias) if config.pooler else None
        self.apply(lambda module: init_weights(module, config.init_std))

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, kv_cache: KVCache | None = None):
        """input_ids (B, T); token_type_ids (B, T), 0 for segment A and 1 for B (default all 0);
        attention_mask (B, T_past + T), 1 for real tokens and 0 for padding. kv_cache: keys and
        values attended to before the tokens (e.g. a prefix-tuning prefix), updated in place.
        Returns hidden states (B, T, C) and the pooled [CLS] vector (B, C), None without a pooler."""
        x = self.embed(input_ids, token_type_ids, kv_cache)  # (B, T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, attention_mask, kv_cache, layer)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None  # (B, C)
        return x, pooled

    def embed(self, input_ids, token_type_ids=None, kv_cache: KVCache | None = None):
        """Word + position + segment embeddings, normalised: (B, T) ids -> (B, T, C)."""
        past = kv_cache.next_position if kv_cache is not None else 0
        self.check_length(past + input_ids.size(1))
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif self.embeddings.token_type is None and token_type_ids.any():
            raise ValueError("token_type_ids mark a segment B, but this Bert has no token-type embeddings "
                             "(type_vocab_size=0, as DistilBERT): give it one text, or all-zero token_type_ids")
        return self.embeddings(input_ids, token_type_ids, past)


class MLMHead(nn.Module):
    """Predicts the original token at a masked position: dense -> GELU -> LayerNorm -> vocabulary."""

    def __init__(self, config: BertConfig, word_embedding: nn.Embedding):
        super().__init__()
        self.dense = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate=config.gelu_approximate)
        self.ln = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.decoder = nn.Linear(config.n_embd, config.vocab_size, bias=config.bias)
        self.decoder.weight = word_embedding.weight  # tied to the input word embedding

    def forward(self, hidden):  # (..., C) -> (..., vocab_size)
        return self.decoder(self.ln(self.gelu(self.dense(hidden))))


@dataclass
class PreTrainingOutput:
    mlm_logits: torch.Tensor  # (B, T, V), or (N, V) for the N masked positions when mlm_labels are given
    nsp_logits: torch.Tensor  # (B, 2)
    loss: torch.Tensor | None = None  # mlm_loss + nsp_loss, or whichever has labels
    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None


class BertForPreTraining(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        if not config.pooler:
            raise ValueError("BertForPreTraining's next-sentence head reads the pooled [CLS] vector: it needs a "
                             "BertConfig with pooler=True")
        self.config = config
        self.bert = Bert(config)
        self.mlm_head = MLMHead(config, self.bert.embeddings.word)
        self.nsp_head = nn.Linear(config.n_embd, 2, bias=config.bias)  # 0: B follows A, 1: B is random
        for head in (self.mlm_head, self.nsp_head):
            head.apply(lambda module: init_weights(module, config.init_std))

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, mlm_labels=None, nsp_labels=None):
        hidden, pooled = self.bert(input_ids, token_type_ids, attention_mask)
        if mlm_labels is not None:
            # Only ~15% of positions carry a label: run the vocabulary-sized head on those alone.
            hidden = hidden[mlm_labels != IGNORE_INDEX]  # (N, C)
        out = PreTrainingOutput(mlm_logits=self.mlm_head(hidden), nsp_logits=self.nsp_head(pooled))
        if mlm_labels is not None:
            out.mlm_loss = mlm_loss(out.mlm_logits, mlm_labels)
        if nsp_labels is not None:
            out.nsp_loss = nsp_loss(out.nsp_logits, nsp_labels)
        losses = [loss for loss in (out.mlm_loss, out.nsp_loss) if loss is not None]
        out.loss = sum(losses) if losses else None
        return out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # the tied decoder matrix is counted once
