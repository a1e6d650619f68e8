"""Hugging Face config.json <-> GPTConfig / BertConfig: a row per field, and what minilm refuses.

DistilBERT's config.json has keys of its own (dim, n_layers, hidden_dim, ...) and becomes a BertConfig
without token-type embeddings and pooler (type_vocab_size=0, pooler=False)."""

from pathlib import Path

from common.errors import CheckpointError, ConfigError

from ..model import BertConfig, BertForPreTraining, GPTConfig
from .names import family_of

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
DISTILBERT_PARTS = dict(type_vocab_size=0, pooler=False, layer_norm_eps=DISTILBERT_LAYER_NORM_EPS)
# Hugging Face activation names -> torch's GELU approximation.
GELU_NAMES = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "gelu": "none"}
# Options minilm does not implement: (key, the value minilm's model matches).
GPT2_FIXED = [("add_cross_attention", False), ("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False)]
BERT_FIXED = [("add_cross_attention", False), ("is_decoder", False), ("position_embedding_type", "absolute")]
# Per family: (config keys, options refused, the activation's key, its default, the fields config.json does not hold).
FAMILIES = {
    "gpt2": (GPT2_CONFIG_KEYS, GPT2_FIXED, "activation_function", "gelu_new", {}),
    "bert": (BERT_CONFIG_KEYS, BERT_FIXED, "hidden_act", "gelu", {}),
    "distilbert": (DISTILBERT_CONFIG_KEYS, [], "activation", "gelu", DISTILBERT_PARTS),
}


def config_from_hf(hf: dict, family: str, folder: Path | str = "config.json"):
    """A transformers config.json dict -> GPTConfig or BertConfig; refuses what minilm cannot run."""
    model_type = hf.get("model_type")
    if model_type != family:
        other = {"gpt2": "model_class=GPT", "bert": "model_class=Bert", "distilbert": "model_class=Bert"}.get(model_type)
        hint = (f"; load it with minilm.from_pretrained(path, {other})" if other
                else "; minilm reads only gpt2, bert and distilbert folders")
        raise CheckpointError(f"{folder}: config.json has model_type {model_type!r}, expected {family!r}{hint}")
    keys, fixed, act_key, act_default, not_in_file = FAMILIES[family]
    for key, supported in fixed:
        if hf.get(key, supported) != supported:
            raise CheckpointError(f"{folder}: config.json sets {key}={hf[key]!r}; minilm implements only "
                                  f"{key}={supported!r}")
    activation = hf.get(act_key, act_default)
    if activation not in GELU_NAMES:
        raise CheckpointError(f"{folder}: {act_key}={activation!r} is not supported; minilm's MLP uses GELU "
                              f"({', '.join(GELU_NAMES)})")
    values = {field: hf.get(key, default) for key, field, default in keys}
    config_cls = GPTConfig if family == "gpt2" else BertConfig
    return config_cls(**values, **not_in_file, gelu_approximate=GELU_NAMES[activation])


def config_to_hf(model) -> dict:
    """The config.json transformers needs to rebuild the model."""
    config, family = model.config, family_of(model)
    keys = FAMILIES[family][0]
    # n_inner None means 4 * n_embd; GPT-2's config.json reads null the same way, BERT's needs the number.
    hf = {key: config.mlp_width if field == "n_inner" and family != "gpt2" else getattr(config, field)
          for key, field, _ in keys}
    gelu = {"tanh": "gelu_new", "none": "gelu"}[config.gelu_approximate]
    if family == "gpt2":
        architecture = "GPT2LMHeadModel"
        hf.update(activation_function=gelu, embd_pdrop=config.dropout)  # minilm: one dropout rate
    elif family == "distilbert":
        if config.layer_norm_eps != DISTILBERT_LAYER_NORM_EPS:
            raise ConfigError(f"DistilBERT's LayerNorms use eps {DISTILBERT_LAYER_NORM_EPS:g}, fixed in its code; "
                              f"this Bert has layer_norm_eps={config.layer_norm_eps:g}, so transformers would "
                              "compute other numbers from its weights")
        architecture = "DistilBertModel"
        hf.update(activation=gelu, sinusoidal_pos_embds=False)  # a sinusoidal table is saved like a trained one
    else:
        architecture = "BertForPreTraining" if isinstance(model, BertForPreTraining) else "BertModel"
        hf.update(hidden_act=gelu, position_embedding_type="absolute")
    return {"model_type": family, "architectures": [architecture], **hf, "tie_word_embeddings": True}
