"""Hugging Face config.json <-> GPTConfig / BertConfig: a row per field, and what minilm refuses.
(Llama's config.json <-> LlamaConfig: configs_llama.py.)

Every BERT-style family becomes a BertConfig; what config.json does not say, the family fixes (`shape`):
DistilBERT has no token types and no pooler (and keys of its own: dim, n_layers, ...), RoBERTa counts its
positions after the padding id, ALBERT shares its layers, ELECTRA has no pooler. ALBERT and ELECTRA add
embedding_size, the width E of the word vectors (ELECTRA's equal to hidden_size means no projection)."""

from dataclasses import dataclass
from pathlib import Path

from common.errors import CheckpointError, ConfigError

from ..model import BertConfig, GPTConfig
from .configs_llama import llama_config_from_hf, llama_config_to_hf
from .families import FAMILIES, architecture_of, folder_architecture, minilm_classes

# (Hugging Face key, minilm field, transformers' default when the key is absent)
GPT2_CONFIG_KEYS = [
    ("vocab_size", "vocab_size", 50257), ("n_positions", "block_size", 1024), ("n_layer", "n_layer", 12),
    ("n_head", "n_head", 12), ("n_embd", "n_embd", 768), ("n_inner", "n_inner", None),
    ("resid_pdrop", "dropout", 0.1), ("attn_pdrop", "attn_dropout", 0.1),
    ("layer_norm_epsilon", "layer_norm_eps", 1e-5), ("initializer_range", "init_std", 0.02),
]
BERT_CONFIG_KEYS = [
    ("vocab_size", "vocab_size", 30522), ("max_position_embeddings", "block_size", 512),
    ("num_hidden_layers", "n_layer", 12), ("num_attention_heads", "n_head", 12),
    ("hidden_size", "n_embd", 768), ("intermediate_size", "n_inner", 3072),
    ("hidden_dropout_prob", "dropout", 0.1), ("attention_probs_dropout_prob", "attn_dropout", 0.1),
    ("layer_norm_eps", "layer_norm_eps", 1e-12), ("initializer_range", "init_std", 0.02),
    ("type_vocab_size", "type_vocab_size", 2), ("pad_token_id", "pad_token_id", 0),
]
DISTILBERT_CONFIG_KEYS = [
    ("vocab_size", "vocab_size", 30522), ("max_position_embeddings", "block_size", 512),
    ("n_layers", "n_layer", 6), ("n_heads", "n_head", 12), ("dim", "n_embd", 768),
    ("hidden_dim", "n_inner", 3072), ("dropout", "dropout", 0.1), ("attention_dropout", "attn_dropout", 0.1),
    ("initializer_range", "init_std", 0.02), ("pad_token_id", "pad_token_id", 0),
]
DISTILBERT_LAYER_NORM_EPS = 1e-12  # fixed in DistilBERT's code, not a config.json key
# Hugging Face activation names -> torch's GELU approximation.
GELU_NAMES = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "gelu": "none"}
# Options minilm does not implement: (key, the value minilm's model matches).
GPT2_FIXED = [("add_cross_attention", False), ("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False)]
BERT_FIXED = [("add_cross_attention", False), ("is_decoder", False), ("position_embedding_type", "absolute")]
ALBERT_FIXED = [*BERT_FIXED, ("num_hidden_groups", 1), ("inner_group_num", 1)]
WHY_FIXED = {
    "num_hidden_groups": "minilm's ALBERT runs one shared block at every layer (share_layers), not groups of blocks",
    "inner_group_num": "each layer of minilm's ALBERT is one block, not several in a row",
}


def bert_keys(**defaults) -> list[tuple[str, str, object]]:
    """BERT's keys, with another family's defaults (by minilm field) for keys config.json leaves out."""
    return [(key, field, defaults.get(field, default)) for key, field, default in BERT_CONFIG_KEYS]


@dataclass(frozen=True)
class FamilyConfig:
    keys: list[tuple[str, str, object]]  # (Hugging Face key, minilm field, default)
    fixed: list[tuple[str, object]]  # options refused unless they have the value minilm implements
    act_key: str  # the activation's key, and its default
    act_default: str
    shape: dict  # minilm fields config.json does not hold: what makes a Bert this family


FAMILY_CONFIGS = {
    "gpt2": FamilyConfig(GPT2_CONFIG_KEYS, GPT2_FIXED, "activation_function", "gelu_new", {}),
    "bert": FamilyConfig(BERT_CONFIG_KEYS, BERT_FIXED, "hidden_act", "gelu", dict(pooler=True)),
    "distilbert": FamilyConfig(DISTILBERT_CONFIG_KEYS, [], "activation", "gelu",
                               dict(type_vocab_size=0, pooler=False, layer_norm_eps=DISTILBERT_LAYER_NORM_EPS)),
    "roberta": FamilyConfig(bert_keys(vocab_size=50265, pad_token_id=1), BERT_FIXED, "hidden_act", "gelu",
                            dict(positions_after_padding=True)),
    "albert": FamilyConfig([*bert_keys(vocab_size=30000, n_embd=4096, n_head=64, n_inner=16384, dropout=0.0,
                                       attn_dropout=0.0), ("embedding_size", "embedding_size", 128)],
                           ALBERT_FIXED, "hidden_act", "gelu_new", dict(share_layers=True)),
    "electra": FamilyConfig([*bert_keys(n_embd=256, n_head=4, n_inner=1024), ("embedding_size", "embedding_size", 128)],
                            BERT_FIXED, "hidden_act", "gelu", dict(pooler=False)),
}


def config_from_hf(hf: dict, family: str, folder: Path | str = "config.json", pooler: bool = True):
    """A transformers config.json dict -> GPTConfig or BertConfig; refuses what minilm cannot run.
    pooler: whether the model to build has one (RoBERTa's and ALBERT's masked-LM models have none);
    families that fix it (BERT, DistilBERT, ELECTRA) ignore it."""
    check_model_type(hf, family, folder)
    if family == "llama":
        return llama_config_from_hf(hf, folder)
    spec = FAMILY_CONFIGS[family]
    for key, supported in spec.fixed:
        if hf.get(key, supported) != supported:
            why = f" ({WHY_FIXED[key]})" if key in WHY_FIXED else ""
            raise CheckpointError(f"{folder}: config.json sets {key}={hf[key]!r}; minilm implements only "
                                  f"{key}={supported!r}{why}")
    activation = hf.get(spec.act_key, spec.act_default)
    if activation not in GELU_NAMES:
        raise CheckpointError(f"{folder}: {spec.act_key}={activation!r} is not supported; minilm's MLP uses GELU "
                              f"({', '.join(GELU_NAMES)})")
    values = {field: hf.get(key, default) for key, field, default in spec.keys}
    if family == "gpt2":
        return GPTConfig(**values, gelu_approximate=GELU_NAMES[activation])
    if family == "electra" and values["embedding_size"] == values["n_embd"]:
        values["embedding_size"] = None  # ElectraModel projects only when the widths differ; so does minilm
    return BertConfig(**{"pooler": pooler, **values, **spec.shape}, gelu_approximate=GELU_NAMES[activation])


def check_model_type(hf: dict, family: str, folder) -> None:
    model_type = hf.get("model_type")
    if model_type != family:
        raise CheckpointError(f"{folder}: config.json has model_type {model_type!r}, expected {family!r}"
                              f"{loader_hint(hf)}")


def loader_hint(hf: dict) -> str:
    """'; load it with ...': the minilm class a folder's config.json asks for, or the families minilm reads."""
    family = hf.get("model_type")
    if family not in FAMILIES:
        return f"; minilm reads only {', '.join(FAMILIES[:-1])} and {FAMILIES[-1]} folders"
    default = folder_architecture(hf).minilm_class.__name__
    names = list(dict.fromkeys(c.__name__ for c in minilm_classes(family)))
    also = f" ({family} folders read into {' or '.join(names)})" if len(names) > 1 else ""
    return f"; load it with minilm.from_pretrained(path, model_class={default}){also}"


def config_to_hf(model) -> dict:
    """The config.json transformers needs to rebuild the model."""
    config, arch = model.config, architecture_of(model)
    if arch.family == "llama":
        return {"model_type": arch.family, "architectures": [arch.name], **llama_config_to_hf(config)}
    spec = FAMILY_CONFIGS[arch.family]
    hf = {key: _saved_value(config, field, arch.family) for key, field, _ in spec.keys}
    hf[spec.act_key] = {"tanh": "gelu_new", "none": "gelu"}[config.gelu_approximate]
    if arch.family == "gpt2":
        hf["embd_pdrop"] = config.dropout  # minilm: one dropout rate
    elif arch.family == "distilbert":
        _check_distilbert_eps(config)
        hf["sinusoidal_pos_embds"] = False  # a sinusoidal table is saved like a trained one
    elif arch.family == "bert":
        hf["position_embedding_type"] = "absolute"
    elif arch.family == "albert":
        hf.update(num_hidden_groups=1, inner_group_num=1)  # one group of one layer: the shared block
    return {"model_type": arch.family, "architectures": [arch.name], **hf, "tie_word_embeddings": True}


def _saved_value(config, field: str, family: str):
    # n_inner None means 4 * n_embd; GPT-2's config.json reads null the same way, the others need the number.
    if field == "n_inner" and family != "gpt2":
        return config.mlp_width
    if field == "embedding_size":
        return config.word_size  # ELECTRA without a projection: E = hidden_size
    return getattr(config, field)


def _check_distilbert_eps(config) -> None:
    if config.layer_norm_eps != DISTILBERT_LAYER_NORM_EPS:
        raise ConfigError(f"DistilBERT's LayerNorms use eps {DISTILBERT_LAYER_NORM_EPS:g}, fixed in its code; "
                          f"this Bert has layer_norm_eps={config.layer_norm_eps:g}, so transformers would "
                          "compute other numbers from its weights")
