"""The name table: which tensor of a Hugging Face file is which tensor of minilm (docs/hf_weights.md).

minilm keeps one naming (the module names in minilm/model/); a Hugging Face file names the same
parts its own way. NAME_TABLE has a row per tensor, and both directions read it:

    loading  (minilm/hf/load.py)   file name -> minilm name, through from_hf
    saving   (minilm/hf/save.py)   minilm name -> file name, through to_hf

The rows are in table_gpt_bert.py, table_successors.py and table_llama.py; families.py says which parts of the table
each transformers class is made of. A row whose minilm tensor this model does not have (no token types,
no projection from E, no sentence head) is left out, and so is the pooler of a class that has none. Llama's
head row is tied or copied as the model's tie_word_embeddings says.
`python -m minilm.hf` prints the table, as docs/hf_weights.md shows it.
"""

from dataclasses import dataclass

import torch

from common.errors import ConfigError

from .families import architecture_of, shape_problem
from .rows import COPY, SPLIT, SPLIT_TRANSPOSE, TIED, TIED_IF_CONFIG, TRANSPOSE
from .table_gpt_bert import BERT_HEAD_ROWS, BERT_ROWS, DISTILBERT_ROWS, EMBEDDING_ROWS, GPT2_ROWS
from .table_successors import ALBERT_HEAD_ROWS, ALBERT_ROWS, ELECTRA_DISCRIMINATOR_ROWS, ELECTRA_GENERATOR_ROWS, \
    ELECTRA_ROWS, ROBERTA_HEAD_ROWS
from .table_llama import LLAMA_HEAD_ROWS, LLAMA_ROWS

# The one name table: a row per tensor, for both directions (docs/hf_weights.md shows it).
NAME_TABLE = [*GPT2_ROWS, *LLAMA_ROWS, *LLAMA_HEAD_ROWS, *EMBEDDING_ROWS, *BERT_ROWS, *BERT_HEAD_ROWS,
              *DISTILBERT_ROWS, *ROBERTA_HEAD_ROWS, *ALBERT_ROWS, *ALBERT_HEAD_ROWS, *ELECTRA_ROWS,
              *ELECTRA_DISCRIMINATOR_ROWS, *ELECTRA_GENERATOR_ROWS]

# Buffers some files carry that are not weights: GPT-2's causal mask (attn.bias) and masking
# constant (attn.masked_bias), the BERT families' 0..511 position index, the rotary frequencies older
# Llama files store in every layer. Recomputed by minilm, so skipped.
IGNORED_BUFFERS = [r"h\.\d+\.attn\.bias", r"h\.\d+\.attn\.masked_bias", r"embeddings\.position_ids",
                   r"layers\.\d+\.self_attn\.rotary_emb\.inv_freq"]
# Older names for the same tensors: TF-era LayerNorm gamma/beta, and the MLM decoder's bias, which
# older files store twice (transformers ties e.g. cls.predictions.decoder.bias to cls.predictions.bias).
LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}
LEGACY_NAMES = {"cls.predictions.decoder.bias": "cls.predictions.bias", "lm_head.decoder.bias": "lm_head.bias",
                "predictions.decoder.bias": "predictions.bias"}
# Parts a file may lack: then they keep their fresh initialisation, with a warning (as in transformers).
OPTIONAL_PARTS = ("mlm_head", "nsp_head", "rtd_head", "pooler")
# What save_pretrained puts in front of the backbone's names in a model with heads, per family.
FILE_PREFIXES = {"gpt2": "transformer.", "llama": "model.", "bert": "bert.", "distilbert": "distilbert.",
                 "roberta": "roberta.", "albert": "albert.", "electra": "electra."}


@dataclass(frozen=True)
class Mapping:
    """One row of NAME_TABLE made concrete for one layer of one model."""
    hf: str  # without prefix
    file_prefix: str  # what save_pretrained puts in front: "transformer.", "model.", "bert." or ""
    minilm: tuple[str, ...]  # one name, or three for a split
    how: str
    tied_to: str

    @property
    def part(self) -> str:
        """The minilm module the tensor belongs to: "embeddings", "blocks", "pooler", "mlm_head", ..."""
        return self.minilm[0].removeprefix("bert.").split(".")[0]


def mappings_for(model) -> list[Mapping]:
    """Expand NAME_TABLE for this model: one Mapping per Hugging Face tensor."""
    arch = architecture_of(model)
    problem = shape_problem(model, arch)
    if problem:
        raise ConfigError(problem)
    params = model.state_dict()
    out = []
    for part, minilm_prefix, file_prefix in arch.parts:
        for row in (r for r in NAME_TABLE if r.model == part):
            for i in range(model.config.n_layer) if "{i}" in row.hf else [None]:
                hf, minilm = row.hf.replace("{i}", str(i)), row.minilm.replace("{i}", str(i))
                names = [minilm.replace("{q,k,v}", p) for p in "qkv"] if "{q,k,v}" in minilm else [minilm]
                how = (TIED if model.config.tie_word_embeddings else COPY) if row.how == TIED_IF_CONFIG else row.how
                mapping = Mapping(hf, file_prefix, tuple(minilm_prefix + n for n in names), how, row.tied_to)
                if all(n in params for n in mapping.minilm) and (arch.pooler or mapping.part != "pooler"):
                    out.append(mapping)
    return out


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
    """The model's weights under Hugging Face names (with the file prefix); tied copies left out.
    A shared-layer (ALBERT) model has one block's tensors: its table rows name blocks.0 alone."""
    params = model.state_dict()
    return {m.file_prefix + m.hf: to_hf(m.how, [params[n] for n in m.minilm])
            for m in mappings_for(model) if m.how != TIED}


def format_table() -> str:
    """NAME_TABLE as Markdown, exactly as docs/hf_weights.md shows it."""
    lines = ["| rows for | Hugging Face name | minilm name | how |", "|---|---|---|---|"]
    lines += [f"| {r.model} | `{r.hf}` | `{r.minilm}` | {r.describe_how()} |" for r in NAME_TABLE]
    return "\n".join(lines) + "\n"

