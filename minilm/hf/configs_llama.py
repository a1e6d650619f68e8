"""Hugging Face LlamaConfig (config.json, model_type "llama") <-> minilm's LlamaConfig.

Most keys are a field renamed (LLAMA_CONFIG_KEYS). The rest are options of transformers' Llama that
minilm's does not have; a folder that uses one is refused by name, since loading it anyway would give
other numbers with no error (LLAMA_REFUSED):

    rope scaling (llama3, linear, dynamic, yarn, ...)   minilm turns q and k by position · θ_i, unscaled
    attention_bias / mlp_bias true                      minilm's Llama has no biases
    head_dim other than hidden_size / heads            minilm's heads split the width evenly
    hidden_act other than silu                          SwiGLU's gate is silu

The rotary base is `rope_theta`: top-level in config.json before transformers 5, inside
`rope_parameters` since; both are read, and both are written.
"""

from pathlib import Path

from common.errors import CheckpointError

from ..model import LlamaConfig

# (Hugging Face key, minilm field, transformers' default when the key is absent)
LLAMA_CONFIG_KEYS = [
    ("vocab_size", "vocab_size", 32000), ("max_position_embeddings", "block_size", 2048),
    ("num_hidden_layers", "n_layer", 32), ("num_attention_heads", "n_head", 32),
    ("num_key_value_heads", "n_kv_head", None), ("hidden_size", "n_embd", 4096),
    ("intermediate_size", "n_inner", 11008), ("attention_dropout", "attn_dropout", 0.0),
    ("rms_norm_eps", "layer_norm_eps", 1e-6), ("initializer_range", "init_std", 0.02),
    ("tie_word_embeddings", "tie_word_embeddings", False),
]
DEFAULT_ROPE_THETA = 10000.0
SIZE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


def llama_config_from_hf(hf: dict, folder: Path | str = "config.json") -> LlamaConfig:
    """A transformers LlamaConfig dict -> minilm's LlamaConfig; refuses what minilm's Llama does not compute."""
    problem = _unsupported(hf)
    if problem:
        raise CheckpointError(f"{folder}: config.json {problem}")
    missing = [key for key in SIZE_KEYS if key not in hf]
    if missing:  # transformers would default to Llama-7B's sizes: 28 GB of float32 for a file that forgot them
        raise CheckpointError(f"{folder}: config.json lacks {', '.join(missing)}; a Llama's sizes must be written "
                              "out (minilm does not default to Llama-7B's), so the file is incomplete")
    values = {field: hf.get(key, default) for key, field, default in LLAMA_CONFIG_KEYS}
    try:
        config = LlamaConfig(**values, rope_theta=float(_rope_theta(hf)))
    except (TypeError, ValueError) as err:  # LlamaConfig's validation: e.g. heads that do not divide the width
        raise CheckpointError(f"{folder}: config.json describes no model minilm can build: {err}") from None
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim != config.head_dim:
        raise CheckpointError(f"{folder}: config.json sets head_dim={head_dim}, but minilm's heads are "
                              f"hidden_size / num_attention_heads = {config.head_dim} wide; minilm cannot "
                              "build heads of another width")
    return config


def _rope_theta(hf: dict) -> float:
    """The rotary base: in rope_parameters (transformers 5), else top-level (before it)."""
    parameters = hf.get("rope_parameters")
    if isinstance(parameters, dict) and "rope_theta" in parameters:
        return parameters["rope_theta"]
    return hf.get("rope_theta", DEFAULT_ROPE_THETA)


def _unsupported(hf: dict) -> str | None:
    """What in config.json minilm's Llama does not compute, said as the rest of an error; or None."""
    for key in ("rope_parameters", "rope_scaling"):  # transformers 5's name, and the name before it
        settings = hf.get(key)
        rope_type = settings.get("rope_type", settings.get("type", "default")) if isinstance(settings, dict) else \
            "default"
        if rope_type != "default":
            return (f"asks for rope scaling {rope_type!r} ({key}); minilm's rotary embeddings are unscaled "
                    "(rope_type 'default'), so its numbers would differ")
    for key in ("attention_bias", "mlp_bias"):
        if hf.get(key, False):
            return f"sets {key}=true; minilm's Llama has no biases, so it cannot hold these weights"
    activation = hf.get("hidden_act", "silu")
    if activation != "silu":
        return f"sets hidden_act={activation!r}; minilm's SwiGLU gates with silu only"
    return None


def llama_config_to_hf(config: LlamaConfig) -> dict:
    """The config.json keys transformers' LlamaConfig needs to rebuild the model (besides model_type and
    architectures). bos and eos are null: the model does not know its tokenizer's ids (the export sets them)."""
    hf = {key: getattr(config, field) for key, field, _ in LLAMA_CONFIG_KEYS}
    hf.update(num_key_value_heads=config.kv_heads, intermediate_size=config.mlp_width, head_dim=config.head_dim,
              hidden_act="silu", attention_bias=False, mlp_bias=False, rope_theta=config.rope_theta,
              rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
              bos_token_id=None, eos_token_id=None)
    return hf
