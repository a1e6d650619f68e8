"""minilm: GPT and BERT written out by hand, for reading and stepping through.

    minilm/model/      the Transformer: config, attention, blocks, GPT, BERT, Llama, losses, sampling
    minilm/training/   the Trainer, checkpoints, the command line, DDP, the shared training tasks
    minilm/hf/         Hugging Face folders in and out through one name table; the parity command
    minilm/gguf/       GGUF files (llama.cpp's format) into a Llama
    minilm/peft/       LoRA, AdaLoRA, adapters, prefix-tuning, freezing
    minilm/finetune/   task heads, fine-tuning tasks, base models in and fine-tuned checkpoints out

Start reading at minilm/model/ (its __init__ gives the order).
"""

from pathlib import Path

from . import hf
from .hf import save_pretrained
from .model import (MLP, Bert, BertConfig, BertForPreTraining, Block, GPT, GPTConfig, KVCache, Llama, LlamaConfig,
                    MultiHeadAttention)

__all__ = ["GPT", "GPTConfig", "Llama", "LlamaConfig", "Bert", "BertConfig", "BertForPreTraining", "Block", "MLP",
           "MultiHeadAttention", "KVCache", "from_pretrained", "save_pretrained"]


def from_pretrained(path, model_class=None):
    """A model in eval mode from a Hugging Face folder (config.json picks the class: minilm.hf.from_pretrained)
    or from a GGUF file (a Llama, dequantized to float32: minilm.gguf.load_gguf). Either loader says what is
    wrong with a path that is neither."""
    path = Path(path)
    if path.is_dir() or not (path.suffix == ".gguf" or path.is_file()):
        return hf.from_pretrained(path, model_class)
    from .gguf import load_gguf  # only when asked: reading GGUF is a room of its own

    if model_class not in (None, Llama):
        raise TypeError(f"{path} is a GGUF file, which holds a Llama-family model: from_pretrained builds a Llama "
                        f"from it, not a {model_class.__name__}")
    return load_gguf(path)  # a file that is not GGUF, or is cut short, is refused by name (common/gguf.py)
