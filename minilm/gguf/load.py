"""A GGUF file of a Llama-family model (Llama, SmolLM2, Mistral: `general.architecture` "llama") -> minilm's
Llama with the file's weights, dequantized to float32.

    llama_config(file)      LlamaConfig from the llama.* metadata
    llama_state_dict(file)  every tensor, through the name table (names.py), q and k rows put back
    load_gguf(path)         both, into a Llama in eval mode
"""

from pathlib import Path

import torch

from common.gguf import GGUFError, GGUFFile, read_gguf
from minilm.model.config import LlamaConfig
from minilm.model.llama import Llama
from minilm.model.rope import RotaryEmbedding

from .dequant import dequantize
from .names import ROTARY_K, ROTARY_Q, minilm_name, undo_rotary_permutation

ARCHITECTURES = ("llama",)  # general.architecture values minilm can build


def load_gguf(path) -> Llama:
    """The Llama a GGUF file holds, its weights dequantized to float32, in eval mode."""
    gguf_file = read_gguf(path)
    config = llama_config(gguf_file)
    model = _llama_without_weights(config)
    state = llama_state_dict(gguf_file, config)
    expected = {name: tensor.shape for name, tensor in model.state_dict().items()}
    if config.tie_word_embeddings:
        state["lm_head.weight"] = state["wte.weight"]  # one tensor, two names in the state_dict
    missing = sorted(set(expected) - set(state))
    if missing:
        raise GGUFError(f"{gguf_file.path}: no tensor for {', '.join(missing[:4])}" +
                        (f" and {len(missing) - 4} more" if len(missing) > 4 else "") + "; the file is incomplete")
    for name, tensor in state.items():
        if tensor.shape != expected[name]:
            raise GGUFError(f"{gguf_file.path}: {name} has shape {tuple(tensor.shape)}, but the metadata "
                            f"makes it {tuple(expected[name])}; the file's metadata and tensors disagree")
    model.load_state_dict(state, assign=True)  # the dequantized tensors become the parameters: nothing copied
    if config.tie_word_embeddings:
        model.lm_head.weight = model.wte.weight  # assign gave each name its own Parameter: one matrix again
    left_empty = [name for name, tensor in [*model.named_parameters(), *model.named_buffers()] if tensor.is_meta]
    if left_empty:  # a bug in this loader (a new buffer it does not know), not in the file
        raise RuntimeError(f"load_gguf left {', '.join(left_empty)} without numbers")
    return model.eval()


def _llama_without_weights(config: LlamaConfig) -> Llama:
    """A Llama whose parameters have shapes but no numbers yet (torch's "meta" device): drawing SmolLM2's 135M
    random initial weights, only for the file's weights to replace them, took most of the loading time."""
    with torch.device("meta"):
        model = Llama(config)
    model.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)  # inv_freq is computed, not in the file
    return model


def llama_config(gguf_file: GGUFFile) -> LlamaConfig:
    """LlamaConfig from the `llama.*` keys; a file of another architecture is refused by name."""
    metadata, path = gguf_file.metadata, gguf_file.path
    architecture = metadata.get("general.architecture")
    if architecture not in ARCHITECTURES:
        raise GGUFError(f"{path}: the architecture is {architecture!r}; minilm builds {', '.join(ARCHITECTURES)} "
                        "(Llama, SmolLM, Mistral) from GGUF: give the GGUF file of a Llama-family model")

    def key(name, kind=int, default=None):
        value = metadata.get(f"llama.{name}", default)
        if value is None:
            raise GGUFError(f"{path}: the metadata has no llama.{name}; the file is incomplete")
        if kind is int and type(value) is not int or kind is float and type(value) not in (int, float):
            raise GGUFError(f"{path}: llama.{name} is {value!r}, not a number of the kind it should be")
        return value

    if metadata.get("llama.rope.scaling.type", "none") != "none":
        raise GGUFError(f"{path}: rope scaling {metadata['llama.rope.scaling.type']!r}; minilm's Llama has none")
    n_head = key("attention.head_count")
    fields = dict(
        vocab_size=_vocab_size(gguf_file), block_size=key("context_length"), n_layer=key("block_count"),
        n_head=n_head, n_kv_head=key("attention.head_count_kv", default=n_head), n_embd=key("embedding_length"),
        n_inner=key("feed_forward_length"), layer_norm_eps=key("attention.layer_norm_rms_epsilon", float),
        rope_theta=float(key("rope.freq_base", float, default=10000.0)),
        tie_word_embeddings="output.weight" not in gguf_file.tensors,
    )
    try:
        config = LlamaConfig(**fields)
    except ValueError as err:  # LlamaConfig's validation: the metadata describes no model minilm can build
        raise GGUFError(f"{path}: its llama.* metadata describes no model minilm can build: {err}") from None
    if key("rope.dimension_count", default=config.head_dim) != config.head_dim:
        raise GGUFError(f"{path}: rotary embeddings turn {metadata['llama.rope.dimension_count']} of each head's "
                        f"{config.head_dim} dimensions; minilm's Llama turns them all")
    return config


def _vocab_size(gguf_file: GGUFFile) -> int:
    """The size of the token list (tokenizer.ggml.tokens); without one, the rows of the token embedding."""
    tokens = gguf_file.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list):
        return len(tokens)
    if "token_embd.weight" not in gguf_file.tensors:
        raise GGUFError(f"{gguf_file.path}: neither a token list nor a token embedding; the file is incomplete")
    return gguf_file.tensors["token_embd.weight"].shape[0]


def llama_state_dict(gguf_file: GGUFFile, config: LlamaConfig) -> dict[str, torch.Tensor]:
    """minilm name -> float32 tensor, for every tensor of the file; an unknown tensor is an error."""
    state = {}
    for gguf_name in gguf_file.tensors:
        found = minilm_name(gguf_name)
        if found is None:
            raise GGUFError(f"{gguf_file.path}: tensor {gguf_name!r} has no place in minilm's Llama (its "
                            "architecture has a part minilm does not build)")
        name, how = found
        tensor = dequantize(gguf_file, gguf_name)
        if how in (ROTARY_Q, ROTARY_K):
            heads = config.n_head if how == ROTARY_Q else config.kv_heads
            if tensor.dim() != 2 or tensor.shape[0] != heads * config.head_dim:
                raise GGUFError(f"{gguf_file.path}: {gguf_name} has shape {tuple(tensor.shape)}; {heads} heads "
                                f"of {config.head_dim} rows were expected")
            tensor = undo_rotary_permutation(tensor, heads)
        state[name] = tensor
    return state


def is_gguf(path) -> bool:
    """Whether a path is a GGUF file (by its first four bytes), for loaders that take several formats."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"
