"""minilm's tokenizers, written out by hand: character-level, byte-level BPE (GPT-2; SmolLM2's from its GGUF
file, with its chat template), WordPiece (BERT) and SentencePiece, behind one interface (tokenizer/base.py).
See docs/tokenizers.md."""

from .base import Tokenizer, TokenizerFileError
from .bpe import BPETokenizer
from .chat_template import ChatTemplateError, render_chat
from .char import CharTokenizer
from .sentencepiece_tok import SentencePieceTokenizer
from .wordpiece import WordPieceTokenizer
from .factory import TRAINABLE_KINDS, build_tokenizer, load_tokenizer
from .gguf_vocab import tokenizer_from_gguf
from .hf_files import transformers_class, transformers_format_problem, write_transformers_tokenizer

__all__ = [
    "Tokenizer", "TokenizerFileError", "CharTokenizer", "BPETokenizer", "WordPieceTokenizer",
    "SentencePieceTokenizer", "ChatTemplateError", "render_chat", "tokenizer_from_gguf",
    "TRAINABLE_KINDS", "build_tokenizer", "load_tokenizer",
    "transformers_class", "transformers_format_problem", "write_transformers_tokenizer",
]
