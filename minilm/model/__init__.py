"""The Transformer, and nothing else: what a reader steps through. Imports only torch and the stdlib.

Reading order: config.py -> attention.py -> blocks.py -> transformer.py -> gpt.py / bert.py ->
losses.py -> sampling.py.
"""

from .attention import KVCache, MultiHeadAttention
from .bert import Bert, BertForPreTraining
from .blocks import MLP, Block
from .config import BertConfig, GPTConfig, TransformerConfig
from .gpt import GPT

__all__ = ["GPT", "GPTConfig", "Bert", "BertConfig", "BertForPreTraining", "TransformerConfig", "Block", "MLP",
           "MultiHeadAttention", "KVCache"]
