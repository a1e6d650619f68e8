"""minilm: GPT and BERT written out by hand, for reading and stepping through.

Reading order: config.py -> attention.py -> blocks.py -> gpt.py / bert.py -> losses.py.
"""

from .attention import KVCache, MultiHeadAttention
from .bert import Bert, BertForPreTraining
from .blocks import MLP, Block
from .config import BertConfig, GPTConfig
from .gpt import GPT

__all__ = ["GPT", "GPTConfig", "Bert", "BertConfig", "BertForPreTraining", "Block", "MLP",
           "MultiHeadAttention", "KVCache"]
