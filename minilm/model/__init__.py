"""The Transformer, and nothing else: what a reader steps through. Imports only torch and the stdlib.

Reading order: config.py -> attention.py -> blocks.py -> transformer.py -> gpt.py / bert.py ->
losses.py -> sampling.py; then electra.py, BERT's successor with two models in one, and llama.py
(with rope.py), GPT's successor: GPT-2 with four parts swapped.
"""

from .attention import KVCache, LayerCache, MultiHeadAttention
from .bert import Bert, BertForMaskedLM, BertForPreTraining
from .blocks import MLP, Block, transformer_block
from .config import BertConfig, ElectraConfig, GPTConfig, LlamaConfig, TransformerConfig
from .electra import Electra, ElectraDiscriminator
from .gpt import GPT
from .llama import Llama

__all__ = ["GPT", "GPTConfig", "Llama", "LlamaConfig", "Bert", "BertConfig", "BertForMaskedLM", "BertForPreTraining", "Electra",
           "ElectraConfig", "ElectraDiscriminator", "TransformerConfig", "Block", "transformer_block", "MLP", "MultiHeadAttention",
           "KVCache", "LayerCache"]
