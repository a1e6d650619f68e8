"""The name table: which tensor of a Hugging Face GPT-2, BERT or DistilBERT file is which tensor of minilm.

minilm keeps one naming (the module names in minilm/model/); a Hugging Face file names the same
parts its own way. NAME_TABLE has a row per tensor, and both directions read it:

    loading  (minilm/hf/load.py)   file name -> minilm name, through from_hf
    saving   (minilm/hf/save.py)   minilm name -> file name, through to_hf

GPT-2's Conv1D weights are stored (in, out) where nn.Linear stores (out, in): they are transposed.
GPT-2 keeps q, k, v in one c_attn matrix: it is split in three. DistilBERT is a minilm Bert without
token-type embeddings and pooler (BertConfig type_vocab_size=0, pooler=False) under names of its own.
`python -m minilm.hf` prints the table, as docs/hf_weights.md shows it.
"""

from dataclasses import dataclass

import torch

from common.errors import ConfigError

from ..model import GPT, Bert, BertForPreTraining

COPY = "copy"
TRANSPOSE = "transposed (Conv1D)"
SPLIT = "split in 3 (q, k, v)"
SPLIT_TRANSPOSE = "split in 3, transposed (Conv1D)"
TIED = "tied"


@dataclass(frozen=True)
class Row:
    model: str  # "GPT", "Bert", "BertForPreTraining" (its heads; its backbone is Bert's rows), or
    #             "DistilBert" (a Bert without segments and pooler, saved as transformers' DistilBertModel)
    hf: str  # name in a Hugging Face file, without the "transformer." / "bert." prefix; {i}: the layer
    minilm: str  # name in minilm's state_dict; {q,k,v}: one tensor split into three
    how: str
    tied_to: str = ""  # for TIED rows: the Hugging Face name of the embedding this weight shares

    def describe_how(self) -> str:
        return f"tied to {self.tied_to} (may be absent from the file)" if self.how == TIED else self.how


# The one name table: a row per tensor, for both directions (docs/hf_weights.md shows it).
NAME_TABLE = [Row(*fields) for fields in [
    ("GPT", "wte.weight", "wte.weight", COPY),
    ("GPT", "wpe.weight", "wpe.weight", COPY),
    ("GPT", "h.{i}.ln_1.weight", "blocks.{i}.ln_attn.weight", COPY),
    ("GPT", "h.{i}.ln_1.bias", "blocks.{i}.ln_attn.bias", COPY),
    ("GPT", "h.{i}.attn.c_attn.weight", "blocks.{i}.attn.{q,k,v}_proj.weight", SPLIT_TRANSPOSE),
    ("GPT", "h.{i}.attn.c_attn.bias", "blocks.{i}.attn.{q,k,v}_proj.bias", SPLIT),
    ("GPT", "h.{i}.attn.c_proj.weight", "blocks.{i}.attn.out_proj.weight", TRANSPOSE),
    ("GPT", "h.{i}.attn.c_proj.bias", "blocks.{i}.attn.out_proj.bias", COPY),
    ("GPT", "h.{i}.ln_2.weight", "blocks.{i}.ln_mlp.weight", COPY),
    ("GPT", "h.{i}.ln_2.bias", "blocks.{i}.ln_mlp.bias", COPY),
    ("GPT", "h.{i}.mlp.c_fc.weight", "blocks.{i}.mlp.fc_in.weight", TRANSPOSE),
    ("GPT", "h.{i}.mlp.c_fc.bias", "blocks.{i}.mlp.fc_in.bias", COPY),
    ("GPT", "h.{i}.mlp.c_proj.weight", "blocks.{i}.mlp.fc_out.weight", TRANSPOSE),
    ("GPT", "h.{i}.mlp.c_proj.bias", "blocks.{i}.mlp.fc_out.bias", COPY),
    ("GPT", "ln_f.weight", "ln_f.weight", COPY),
    ("GPT", "ln_f.bias", "ln_f.bias", COPY),
    ("GPT", "lm_head.weight", "lm_head.weight", TIED, "wte.weight"),
    ("Bert", "embeddings.word_embeddings.weight", "embeddings.word.weight", COPY),
    ("Bert", "embeddings.position_embeddings.weight", "embeddings.position.weight", COPY),
    ("Bert", "embeddings.token_type_embeddings.weight", "embeddings.token_type.weight", COPY),
    ("Bert", "embeddings.LayerNorm.weight", "embeddings.ln.weight", COPY),
    ("Bert", "embeddings.LayerNorm.bias", "embeddings.ln.bias", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.query.weight", "blocks.{i}.attn.q_proj.weight", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.query.bias", "blocks.{i}.attn.q_proj.bias", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.key.weight", "blocks.{i}.attn.k_proj.weight", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.key.bias", "blocks.{i}.attn.k_proj.bias", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.value.weight", "blocks.{i}.attn.v_proj.weight", COPY),
    ("Bert", "encoder.layer.{i}.attention.self.value.bias", "blocks.{i}.attn.v_proj.bias", COPY),
    ("Bert", "encoder.layer.{i}.attention.output.dense.weight", "blocks.{i}.attn.out_proj.weight", COPY),
    ("Bert", "encoder.layer.{i}.attention.output.dense.bias", "blocks.{i}.attn.out_proj.bias", COPY),
    ("Bert", "encoder.layer.{i}.attention.output.LayerNorm.weight", "blocks.{i}.ln_attn.weight", COPY),
    ("Bert", "encoder.layer.{i}.attention.output.LayerNorm.bias", "blocks.{i}.ln_attn.bias", COPY),
    ("Bert", "encoder.layer.{i}.intermediate.dense.weight", "blocks.{i}.mlp.fc_in.weight", COPY),
    ("Bert", "encoder.layer.{i}.intermediate.dense.bias", "blocks.{i}.mlp.fc_in.bias", COPY),
    ("Bert", "encoder.layer.{i}.output.dense.weight", "blocks.{i}.mlp.fc_out.weight", COPY),
    ("Bert", "encoder.layer.{i}.output.dense.bias", "blocks.{i}.mlp.fc_out.bias", COPY),
    ("Bert", "encoder.layer.{i}.output.LayerNorm.weight", "blocks.{i}.ln_mlp.weight", COPY),
    ("Bert", "encoder.layer.{i}.output.LayerNorm.bias", "blocks.{i}.ln_mlp.bias", COPY),
    ("Bert", "pooler.dense.weight", "pooler.weight", COPY),
    ("Bert", "pooler.dense.bias", "pooler.bias", COPY),
    ("BertForPreTraining", "cls.predictions.transform.dense.weight", "mlm_head.dense.weight", COPY),
    ("BertForPreTraining", "cls.predictions.transform.dense.bias", "mlm_head.dense.bias", COPY),
    ("BertForPreTraining", "cls.predictions.transform.LayerNorm.weight", "mlm_head.ln.weight", COPY),
    ("BertForPreTraining", "cls.predictions.transform.LayerNorm.bias", "mlm_head.ln.bias", COPY),
    ("BertForPreTraining", "cls.predictions.bias", "mlm_head.decoder.bias", COPY),
    ("BertForPreTraining", "cls.predictions.decoder.weight", "mlm_head.decoder.weight", TIED,
     "embeddings.word_embeddings.weight"),
    ("BertForPreTraining", "cls.seq_relationship.weight", "nsp_head.weight", COPY),
    ("BertForPreTraining", "cls.seq_relationship.bias", "nsp_head.bias", COPY),
    ("DistilBert", "embeddings.word_embeddings.weight", "embeddings.word.weight", COPY),
    ("DistilBert", "embeddings.position_embeddings.weight", "embeddings.position.weight", COPY),
    ("DistilBert", "embeddings.LayerNorm.weight", "embeddings.ln.weight", COPY),
    ("DistilBert", "embeddings.LayerNorm.bias", "embeddings.ln.bias", COPY),
    ("DistilBert", "transformer.layer.{i}.attention.q_lin.weight", "blocks.{i}.attn.q_proj.weight", COPY),
    ("DistilBert", "transformer.layer.{i}.attention.q_lin.bias", "blocks.{i}.attn.q_proj.bias", COPY),
    ("DistilBert", "transformer.layer.{i}.attention.k_lin.weight", "blocks.{i}.attn.k_proj.weight", COPY),
    ("DistilBert", "transformer.layer.{i}.attention.k_lin.bias", "blocks.{i}.attn.k_proj.bias", COPY),
    ("DistilBert", "transformer.layer.{i}.attention.v_lin.weight", "blocks.{i}.attn.v_proj.weight", COPY),
    ("DistilBert", "transformer.layer.{i}.attention.v_lin.bias", "blocks.{i}.attn.v_proj.bias", COPY),
    ("DistilBert", "transformer.layer.{i}.attention.out_lin.weight", "blocks.{i}.attn.out_proj.weight", COPY),
    ("DistilBert", "transformer.layer.{i}.attention.out_lin.bias", "blocks.{i}.attn.out_proj.bias", COPY),
    ("DistilBert", "transformer.layer.{i}.sa_layer_norm.weight", "blocks.{i}.ln_attn.weight", COPY),
    ("DistilBert", "transformer.layer.{i}.sa_layer_norm.bias", "blocks.{i}.ln_attn.bias", COPY),
    ("DistilBert", "transformer.layer.{i}.ffn.lin1.weight", "blocks.{i}.mlp.fc_in.weight", COPY),
    ("DistilBert", "transformer.layer.{i}.ffn.lin1.bias", "blocks.{i}.mlp.fc_in.bias", COPY),
    ("DistilBert", "transformer.layer.{i}.ffn.lin2.weight", "blocks.{i}.mlp.fc_out.weight", COPY),
    ("DistilBert", "transformer.layer.{i}.ffn.lin2.bias", "blocks.{i}.mlp.fc_out.bias", COPY),
    ("DistilBert", "transformer.layer.{i}.output_layer_norm.weight", "blocks.{i}.ln_mlp.weight", COPY),
    ("DistilBert", "transformer.layer.{i}.output_layer_norm.bias", "blocks.{i}.ln_mlp.bias", COPY),
]]

# Buffers some files carry that are not weights: GPT-2's causal mask (attn.bias) and masking
# constant (attn.masked_bias), BERT's and DistilBERT's 0..511 position index. Recomputed by minilm, so skipped.
IGNORED_BUFFERS = [r"h\.\d+\.attn\.bias", r"h\.\d+\.attn\.masked_bias", r"embeddings\.position_ids"]
# Older names for the same tensors: TF-era LayerNorm gamma/beta, and the MLM decoder's bias, which
# older files store twice (transformers ties cls.predictions.decoder.bias to cls.predictions.bias).
LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}
LEGACY_NAMES = {"cls.predictions.decoder.bias": "cls.predictions.bias"}
HEADS = ("mlm_head", "nsp_head")  # BertForPreTraining's heads: may be absent, then freshly initialised
# What save_pretrained puts in front of the backbone's names in a model with heads, per family.
FILE_PREFIXES = {"gpt2": "transformer.", "bert": "bert.", "distilbert": "distilbert."}


@dataclass(frozen=True)
class Mapping:
    """One row of NAME_TABLE made concrete for one layer of one model."""
    hf: str  # without prefix
    file_prefix: str  # what save_pretrained puts in front: "transformer.", "bert." or ""
    minilm: tuple[str, ...]  # one name, or three for a split
    how: str
    tied_to: str


def family_of(model_or_cls) -> str:
    """The Hugging Face model_type a model (or class) is saved as: "gpt2", "bert" or "distilbert"
    (a Bert whose config has neither token-type embeddings nor pooler; the class Bert alone says "bert")."""
    cls = model_or_cls if isinstance(model_or_cls, type) else type(model_or_cls)
    if issubclass(cls, GPT):
        return "gpt2"
    if isinstance(model_or_cls, Bert) and is_distilbert_shaped(model_or_cls.config):
        return "distilbert"
    if issubclass(cls, (Bert, BertForPreTraining)):
        return "bert"
    raise TypeError(f"{cls.__name__} has no Hugging Face mapping; use GPT, Bert or BertForPreTraining")


def is_distilbert_shaped(config) -> bool:
    """DistilBERT's two differences from BERT: no token-type embeddings, no pooler."""
    return config.type_vocab_size == 0 and not config.pooler


def mappings_for(model) -> list[Mapping]:
    """Expand NAME_TABLE for this model: one Mapping per Hugging Face tensor."""
    if not model.config.bias:
        raise ConfigError(f"this {type(model).__name__} has bias=False, but Hugging Face GPT-2 and BERT checkpoints "
                          "have a bias in every Linear and LayerNorm: only bias=True models map onto them")
    family = family_of(model)
    if family == "bert":
        _require_bert_parts(model)
    if isinstance(model, GPT):
        parts = [("GPT", "", "transformer.")]  # (table rows, minilm prefix, file prefix)
    elif isinstance(model, BertForPreTraining):
        parts = [("Bert", "bert.", "bert."), ("BertForPreTraining", "", "")]
    else:
        parts = [("DistilBert" if family == "distilbert" else "Bert", "", "")]
    out = []
    for part, minilm_prefix, file_prefix in parts:
        for row in (r for r in NAME_TABLE if r.model == part):
            for i in range(model.config.n_layer) if "{i}" in row.hf else [None]:
                hf, minilm = row.hf.replace("{i}", str(i)), row.minilm.replace("{i}", str(i))
                names = [minilm.replace("{q,k,v}", p) for p in "qkv"] if "{q,k,v}" in minilm else [minilm]
                out.append(Mapping(hf, file_prefix, tuple(minilm_prefix + n for n in names), row.how, row.tied_to))
    return out


def _require_bert_parts(model) -> None:
    """A Hugging Face BERT has both token-type embeddings and a pooler, DistilBERT neither: a Bert with one
    of the two has no Hugging Face form."""
    config = model.config
    if config.type_vocab_size == 0 or not config.pooler:
        raise ConfigError(f"this {type(model).__name__} has type_vocab_size={config.type_vocab_size} and "
                          f"pooler={config.pooler}: Hugging Face's BertModel has token-type embeddings and a "
                          "pooler, its DistilBertModel neither; only those two shapes map onto their files")


def to_hf(how: str, tensors: list[torch.Tensor]) -> torch.Tensor:
    """minilm tensor(s) -> the Hugging Face tensor. nn.Linear stores (out, in), Conv1D (in, out)."""
    if how in (SPLIT, SPLIT_TRANSPOSE):
        joined = torch.cat(tensors, dim=0)  # q, k, v stacked: (3C, C) weight or (3C,) bias
        return joined.t() if how == SPLIT_TRANSPOSE else joined  # weight -> (C, 3C)
    return tensors[0].t() if how == TRANSPOSE else tensors[0]


def from_hf(how: str, tensor: torch.Tensor) -> list[torch.Tensor]:
    """The Hugging Face tensor -> minilm tensor(s): the inverse of to_hf."""
    if how in (SPLIT, SPLIT_TRANSPOSE):
        stacked = tensor.t() if how == SPLIT_TRANSPOSE else tensor  # (3C, C) or (3C,)
        return list(stacked.chunk(3, dim=0))
    return [tensor.t() if how == TRANSPOSE else tensor]


def to_hf_state_dict(model) -> dict[str, torch.Tensor]:
    """The model's weights under Hugging Face names (with the file prefix); tied copies left out."""
    params = model.state_dict()
    return {m.file_prefix + m.hf: to_hf(m.how, [params[n] for n in m.minilm])
            for m in mappings_for(model) if m.how != TIED}


def format_table() -> str:
    """NAME_TABLE as Markdown, exactly as docs/hf_weights.md shows it."""
    lines = ["| rows for | Hugging Face name | minilm name | how |", "|---|---|---|---|"]
    lines += [f"| {r.model} | `{r.hf}` | `{r.minilm}` | {r.describe_how()} |" for r in NAME_TABLE]
    return "\n".join(lines) + "\n"
