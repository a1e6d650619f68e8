"""Which Hugging Face family and class a minilm model is, and which minilm class a folder becomes.

minilm has one Bert; Hugging Face has a model per family, named in config.json's model_type. The family of
a minilm model comes from its class and config (family_of), by the first rule that applies:

    Llama                                                llama        (a Llama is a GPT: asked first)
    GPT                                                  gpt2
    an ElectraDiscriminator, or a model of ElectraConfig electra
    positions_after_padding                              roberta
    share_layers                                         albert
    no pooler, token types                               electra      (ELECTRA's encoder is BERT's without a pooler)
    no pooler, no token types                            distilbert
    anything else                                        bert

Each (family, minilm class) pair is one transformers class, a row of ARCHITECTURES: its name, which
config.json's "architectures" lists, and the parts of the name table it is made of.
"""

from dataclasses import dataclass

from common.errors import ConfigError

from ..model import GPT, Bert, BertForMaskedLM, BertForPreTraining, Electra, ElectraConfig, ElectraDiscriminator, Llama


@dataclass(frozen=True)
class Architecture:
    name: str  # transformers' class, as config.json's "architectures" lists it
    family: str  # config.json's model_type
    minilm_class: type  # the minilm class it is read into and written from
    parts: tuple[tuple[str, str, str], ...]  # (rows of the name table, minilm prefix, file prefix)
    pooler: bool  # whether the transformers class has a pooler (masked-LM models have none)


BERT_BACKBONE = ("Embeddings", "Bert")  # RoBERTa's too
ALBERT_BACKBONE = ("Embeddings", "Albert")
ELECTRA_BACKBONE = ("Embeddings", "Electra", "Bert")


def encoder(name: str, family: str, backbone: tuple[str, ...], pooler: bool) -> Architecture:
    """A transformers encoder alone (BertModel, RobertaModel, ...): a minilm Bert, no prefixes."""
    return Architecture(name, family, Bert, tuple((rows, "", "") for rows in backbone), pooler)


def with_head(name: str, family: str, minilm_class: type, backbone: tuple[str, ...], head: str,
              pooler: bool) -> Architecture:
    """An encoder with heads: minilm keeps the encoder under bert., transformers under the family's name
    (bert., roberta., albert., electra.); the heads' names have no prefix in either."""
    parts = tuple((rows, "bert.", f"{family}.") for rows in backbone) + ((head, "", ""),)
    return Architecture(name, family, minilm_class, parts, pooler)


ARCHITECTURES = [
    Architecture("GPT2LMHeadModel", "gpt2", GPT, (("GPT", "", "transformer."),), pooler=False),
    # The decoder under model., the head (lm_head.weight) outside it.
    Architecture("LlamaForCausalLM", "llama", Llama, (("Llama", "", "model."), ("LlamaForCausalLM", "", "")),
                 pooler=False),
    encoder("BertModel", "bert", BERT_BACKBONE, pooler=True),
    with_head("BertForPreTraining", "bert", BertForPreTraining, BERT_BACKBONE, "BertForPreTraining", pooler=True),
    with_head("BertForMaskedLM", "bert", BertForMaskedLM, BERT_BACKBONE, "BertForPreTraining", pooler=False),
    encoder("DistilBertModel", "distilbert", ("Embeddings", "DistilBert"), pooler=False),
    encoder("RobertaModel", "roberta", BERT_BACKBONE, pooler=True),
    with_head("RobertaForMaskedLM", "roberta", BertForMaskedLM, BERT_BACKBONE, "RobertaForMaskedLM", pooler=False),
    encoder("AlbertModel", "albert", ALBERT_BACKBONE, pooler=True),
    with_head("AlbertForPreTraining", "albert", BertForPreTraining, ALBERT_BACKBONE, "AlbertForPreTraining",
              pooler=True),
    with_head("AlbertForMaskedLM", "albert", BertForMaskedLM, ALBERT_BACKBONE, "AlbertForPreTraining", pooler=False),
    encoder("ElectraModel", "electra", ELECTRA_BACKBONE, pooler=False),
    with_head("ElectraForPreTraining", "electra", ElectraDiscriminator, ELECTRA_BACKBONE, "ElectraForPreTraining",
              pooler=False),
    with_head("ElectraForMaskedLM", "electra", BertForMaskedLM, ELECTRA_BACKBONE, "ElectraForMaskedLM", pooler=False),
]
FAMILIES = tuple(dict.fromkeys(a.family for a in ARCHITECTURES))  # gpt2, llama, bert, distilbert, roberta, albert,
#                                                                    electra


def family_of(model) -> str:
    """The Hugging Face model_type a minilm model is saved as (the rules in this module's docstring)."""
    if isinstance(model, Llama):
        return "llama"
    if isinstance(model, GPT):
        return "gpt2"
    if isinstance(model, Electra):
        raise TypeError("an Electra is two models: save model.discriminator (transformers' ElectraForPreTraining) "
                        "and model.generator (ElectraForMaskedLM), each to its own folder")
    if not isinstance(model, (Bert, BertForMaskedLM, ElectraDiscriminator)):
        raise TypeError(f"{type(model).__name__} has no Hugging Face mapping; use GPT, Llama, Bert, BertForMaskedLM, "
                        "BertForPreTraining or ElectraDiscriminator")
    config = model.config
    if isinstance(model, ElectraDiscriminator) or isinstance(config, ElectraConfig):
        return "electra"
    if config.positions_after_padding:
        return "roberta"
    if config.share_layers:
        return "albert"
    if not config.pooler:
        return "electra" if config.type_vocab_size else "distilbert"
    return "bert"


def architecture_of(model) -> Architecture:
    """The transformers class this model is saved as."""
    family = family_of(model)
    for cls in type(model).__mro__:  # the most specific class first: BertForPreTraining before BertForMaskedLM
        for arch in ARCHITECTURES:
            if arch.family == family and arch.minilm_class is cls:
                return arch
    have = ", ".join(f"{a.name} ({a.minilm_class.__name__})" for a in ARCHITECTURES if a.family == family)
    raise ConfigError(f"a {type(model).__name__} of the {family} family has no Hugging Face class; {family} has "
                      f"{have}")


def folder_architecture(hf_config: dict) -> Architecture:
    """The architecture a folder's config.json names, or its family's encoder when it names none minilm maps."""
    family = hf_config.get("model_type")
    ours = [a for a in ARCHITECTURES if a.family == family]
    named = [a for a in ours if a.name in (hf_config.get("architectures") or [])]
    return (named or ours)[0]


def minilm_classes(family: str) -> list[type]:
    """The minilm classes a folder of this family can be read into."""
    return [a.minilm_class for a in ARCHITECTURES if a.family == family]


# Masked-LM heads whose GELU is fixed in transformers' code (exact erf), whatever hidden_act says.
EXACT_GELU_HEADS = ("RobertaForMaskedLM", "ElectraForMaskedLM")


def shape_problem(model, arch: Architecture) -> str | None:
    """Why this model has no form as arch, or None. (share_layers and positions_after_padding choose
    albert and roberta before these rules are read.)"""
    config, name, family = model.config, type(model).__name__, arch.family
    if family == "llama":
        return (f"this {name} has bias=True, but minilm reads and writes Hugging Face Llama folders without "
                "biases (attention_bias and mlp_bias false): build it with bias=False") if config.bias else None
    if not config.bias:
        return (f"this {name} has bias=False, but Hugging Face checkpoints have a bias in every Linear and "
                "LayerNorm: only bias=True models map onto them")
    if family == "gpt2":
        return None
    if arch.name in EXACT_GELU_HEADS and config.gelu_approximate != "none":
        return (f"{arch.name}'s head always uses the exact GELU, but this {name} has gelu_approximate="
                f"{config.gelu_approximate!r}, which minilm's head uses too: build it with gelu_approximate='none'")
    if config.type_vocab_size == 0 and family in ("bert", "roberta", "albert", "electra"):
        return (f"this {name} has type_vocab_size=0, but Hugging Face's {family} models always have token-type "
                "embeddings; set type_vocab_size >= 1 (RoBERTa uses 1), or pooler=False too for a DistilBERT")
    if family == "albert" and config.embedding_size is None:
        return (f"this {name} shares its layers (ALBERT) but has embedding_size=None; ALBERT always projects "
                "its E-wide embeddings to the hidden size: set embedding_size (128 in albert-base)")
    if family in ("bert", "roberta", "distilbert") and config.embedding_size is not None:
        return (f"this {name} has embedding_size={config.embedding_size}, but {family} has no projection from "
                "the embeddings to the hidden size; ALBERT (share_layers) and ELECTRA (pooler=False) do")
    if family == "electra":
        return _electra_problem(model)
    return None


def _electra_problem(model) -> str | None:
    config, name = model.config, type(model).__name__
    if config.pooler:
        return f"this {name} has a pooler, but ELECTRA has none: build it with pooler=False"
    if config.embedding_size == config.n_embd:
        return (f"this {name} has embedding_size={config.embedding_size} = n_embd, so minilm projects the "
                "embeddings H -> H, but ElectraModel has that projection only when embedding_size differs from "
                "hidden_size: build it with embedding_size=None")
    return None


def format_architectures() -> str:
    """ARCHITECTURES as Markdown, as docs/hf_weights.md shows it: which rows of the name table each class reads."""
    lines = ["| transformers class | model_type | minilm class | rows of the name table | pooler |",
             "|---|---|---|---|---|"]
    for arch in ARCHITECTURES:
        groups: dict[tuple[str, str], list[str]] = {}  # the parts under the same prefixes, in order
        for rows, minilm_prefix, file_prefix in arch.parts:
            groups.setdefault((minilm_prefix, file_prefix), []).append(rows)
        described = "; ".join(", ".join(rows) + _prefixes(*prefixes) for prefixes, rows in groups.items())
        lines.append(f"| {arch.name} | {arch.family} | {arch.minilm_class.__name__} | {described} | "
                     f"{'yes' if arch.pooler else 'no'} |")
    return "\n".join(lines) + "\n"


def _prefixes(minilm_prefix: str, file_prefix: str) -> str:
    if not file_prefix:
        return ""
    return f" (file `{file_prefix}`" + (f", minilm `{minilm_prefix}`)" if minilm_prefix else ")")
