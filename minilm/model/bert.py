"""BERT: word + position + token-type embeddings, a stack of post-LN bidirectional blocks, a tanh
pooler; BertForMaskedLM adds the masked-LM head, and BertForPreTraining the sentence-pair head too.

BERT's successors are this Bert with one idea changed, each a BertConfig field (docs/successors.md):
    RoBERTa   positions_after_padding   position ids count real tokens from pad_token_id + 1
    ALBERT    embedding_size, share_layers   word vectors of E < H projected up; one block at every layer
    ELECTRA   embedding_size            (minilm/model/electra.py adds the generator and the detector)
DistilBERT is this Bert without the token-type embeddings (BertConfig.type_vocab_size=0) and without
the pooler (pooler=False): word + position embeddings, the same blocks, the hidden states."""

from dataclasses import dataclass

import torch
import torch.nn as nn

from .attention import KVCache
from .blocks import init_weights, transformer_block
from .config import BertConfig
from .losses import IGNORE_INDEX, mlm_loss, nsp_loss
from .transformer import TransformerModel


class BertEmbeddings(nn.Module):
    """Word + position + segment vectors, normalised: (B, T) ids -> (B, T, E), E = config.word_size."""

    def __init__(self, config: BertConfig):
        super().__init__()
        E = config.word_size  # n_embd, or ALBERT's / ELECTRA's smaller embedding_size
        self.word = nn.Embedding(config.vocab_size, E)
        self.position = nn.Embedding(config.block_size, E)
        # Segment A or B; DistilBERT (type_vocab_size 0) has no segments.
        self.token_type = nn.Embedding(config.type_vocab_size, E) if config.type_vocab_size else None
        self.ln = nn.LayerNorm(E, eps=config.layer_norm_eps, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.positions_after_padding, self.pad_token_id = config.positions_after_padding, config.pad_token_id

    def forward(self, input_ids, token_type_ids, past: int = 0):  # (B, T) ids -> (B, T, E)
        x = self.word(input_ids) + self.position(self.position_ids(input_ids, past))
        if self.token_type is not None:
            x = x + self.token_type(token_type_ids)
        return self.dropout(self.ln(x))

    def position_ids(self, input_ids, past: int = 0):
        """BERT: 0, 1, 2, ... (after `past` cached tokens). RoBERTa: real tokens count from pad_token_id + 1
        and padding sits at pad_token_id, so a left-padded text has the same positions as an unpadded one."""
        T = input_ids.size(1)
        if not self.positions_after_padding:
            return torch.arange(past, past + T, device=input_ids.device)[None]  # (1, T)
        real = (input_ids != self.pad_token_id).long()  # (B, T)
        return (real.cumsum(dim=1) + past) * real + self.pad_token_id  # (B, T)


class Bert(TransformerModel):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        # Factorised embeddings (ALBERT, ELECTRA): E-wide word vectors, projected to the model's width.
        self.embed_project = nn.Linear(config.embedding_size, config.n_embd, bias=config.bias) \
            if config.embedding_size is not None else None
        if config.share_layers:  # ALBERT: the same Block object at every depth, so one block's parameters
            self.blocks = nn.ModuleList([transformer_block(config, causal=False, pre_ln=False)] * config.n_layer)
        else:
            self.blocks = nn.ModuleList(transformer_block(config, causal=False, pre_ln=False)
                                        for _ in range(config.n_layer))
        # Reads the [CLS] position; DistilBERT (pooler=False) has none.
        self.pooler = nn.Linear(config.n_embd, config.n_embd, bias=config.bias) if config.pooler else None
        self.apply(lambda module: init_weights(module, config.init_std))

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, kv_cache: KVCache | None = None):
        """input_ids (B, T); token_type_ids (B, T), 0 for segment A and 1 for B (default all 0);
        attention_mask (B, T_past + T), 1 for real tokens and 0 for padding. kv_cache: keys and
        values attended to before the tokens (e.g. a prefix-tuning prefix), updated in place.
        Returns hidden states (B, T, C) and the pooled [CLS] vector (B, C), None without a pooler."""
        x = self.embed(input_ids, token_type_ids, kv_cache)  # (B, T, C)
        for block, layer_cache in zip(self.blocks, self.layer_caches(kv_cache)):
            x = block(x, attention_mask, layer_cache)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None  # (B, C)
        return x, pooled

    def embed(self, input_ids, token_type_ids=None, kv_cache: KVCache | None = None):
        """Word + position + segment embeddings, normalised (and projected from E): (B, T) ids -> (B, T, C)."""
        past = kv_cache.next_position if kv_cache is not None else 0
        self.check_length(past + input_ids.size(1))
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif self.embeddings.token_type is None and token_type_ids.any():
            raise ValueError("token_type_ids mark a segment B, but this Bert has no token-type embeddings "
                             "(type_vocab_size=0, as DistilBERT): give it one text, or all-zero token_type_ids")
        x = self.embeddings(input_ids, token_type_ids, past)  # (B, T, E)
        return self.embed_project(x) if self.embed_project is not None else x  # (B, T, C)


class MLMHead(nn.Module):
    """Predicts the original token at a masked position: dense -> GELU -> LayerNorm -> vocabulary.
    With factorised embeddings the dense layer narrows H to E, the width of the tied word vectors."""

    def __init__(self, config: BertConfig, word_embedding: nn.Embedding):
        super().__init__()
        E = config.word_size
        self.dense = nn.Linear(config.n_embd, E, bias=config.bias)
        self.gelu = nn.GELU(approximate=config.gelu_approximate)
        self.ln = nn.LayerNorm(E, eps=config.layer_norm_eps, bias=config.bias)
        self.decoder = nn.Linear(E, config.vocab_size, bias=config.bias)
        self.decoder.weight = word_embedding.weight  # tied to the input word embedding

    def forward(self, hidden):  # (..., C) -> (..., vocab_size)
        return self.decoder(self.ln(self.gelu(self.dense(hidden))))


@dataclass
class PreTrainingOutput:
    mlm_logits: torch.Tensor  # (B, T, V), or (N, V) for the N masked positions when mlm_labels are given
    nsp_logits: torch.Tensor | None = None  # (B, 2) from BertForPreTraining: next-sentence or sentence-order
    loss: torch.Tensor | None = None  # mlm_loss + nsp_loss, or whichever has labels
    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None


class BertForMaskedLM(nn.Module):
    """A Bert and the masked-LM head: RoBERTa's whole pretraining model, and ELECTRA's generator."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.mlm_head = MLMHead(config, self.bert.embeddings.word)
        self.mlm_head.apply(lambda module: init_weights(module, config.init_std))

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, mlm_labels=None):
        hidden, _ = self.bert(input_ids, token_type_ids, attention_mask)
        out = PreTrainingOutput(mlm_logits=self.masked_logits(hidden, mlm_labels))
        if mlm_labels is not None:
            out.mlm_loss = out.loss = mlm_loss(out.mlm_logits, mlm_labels)
        return out

    def masked_logits(self, hidden, mlm_labels=None):  # (B, T, C) -> (B, T, V), or (N, V) with labels
        if mlm_labels is not None:
            # Only ~15% of positions carry a label: run the vocabulary-sized head on those alone.
            hidden = hidden[mlm_labels != IGNORE_INDEX]  # (N, C)
        return self.mlm_head(hidden)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())  # the tied decoder matrix is counted once


class BertForPreTraining(BertForMaskedLM):
    """Masked-LM + a sentence-pair head on the pooled [CLS] vector: BERT's next-sentence prediction,
    or ALBERT's sentence-order prediction (the same head, other pairs: data/bert_pairs.py)."""

    def __init__(self, config: BertConfig):
        if not config.pooler:
            raise ValueError("BertForPreTraining's next-sentence head reads the pooled [CLS] vector: it needs a "
                             "BertConfig with pooler=True")
        super().__init__(config)
        self.nsp_head = nn.Linear(config.n_embd, 2, bias=config.bias)  # 0: B follows A, 1: B is random (or swapped)
        self.nsp_head.apply(lambda module: init_weights(module, config.init_std))

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, mlm_labels=None, nsp_labels=None):
        hidden, pooled = self.bert(input_ids, token_type_ids, attention_mask)
        out = PreTrainingOutput(mlm_logits=self.masked_logits(hidden, mlm_labels), nsp_logits=self.nsp_head(pooled))
        if mlm_labels is not None:
            out.mlm_loss = mlm_loss(out.mlm_logits, mlm_labels)
        if nsp_labels is not None:
            out.nsp_loss = nsp_loss(out.nsp_logits, nsp_labels)
        losses = [loss for loss in (out.mlm_loss, out.nsp_loss) if loss is not None]
        out.loss = sum(losses) if losses else None
        return out
