"""minilm: GPT and BERT written out by hand, for reading and stepping through.

    minilm/model/      the Transformer: config, attention, blocks, GPT, BERT, losses, sampling
    minilm/training/   the Trainer, checkpoints, the command line, DDP, the shared training tasks
    minilm/hf/         Hugging Face folders in and out through one name table; the parity command
    minilm/peft/       LoRA, AdaLoRA, adapters, prefix-tuning, freezing
    minilm/finetune/   task heads, fine-tuning tasks, base models in and fine-tuned checkpoints out

Start reading at minilm/model/ (its __init__ gives the order).
"""

from .hf import from_pretrained, save_pretrained
from .model import MLP, Bert, BertConfig, BertForPreTraining, Block, GPT, GPTConfig, KVCache, MultiHeadAttention

__all__ = ["GPT", "GPTConfig", "Bert", "BertConfig", "BertForPreTraining", "Block", "MLP",
           "MultiHeadAttention", "KVCache", "from_pretrained", "save_pretrained"]
