"""minilm's tokenizers, written out by hand: character-level, byte-level BPE (GPT-2), WordPiece (BERT)
and SentencePiece, behind one interface (tokenizer/base.py). See docs/tokenizers.md."""

from .base import Tokenizer, TokenizerFileError
from .bpe import BPETokenizer
from .char import CharTokenizer
from .sentencepiece_tok import SentencePieceTokenizer
from .wordpiece import WordPieceTokenizer
from .factory import TRAINABLE_KINDS, build_tokenizer, load_tokenizer
from .hf_files import transformers_format_problem, write_transformers_tokenizer

__all__ = [
    "Tokenizer", "TokenizerFileError", "CharTokenizer", "BPETokenizer", "WordPieceTokenizer",
    "SentencePieceTokenizer",
    "TRAINABLE_KINDS", "build_tokenizer", "load_tokenizer",
    "transformers_format_problem", "write_transformers_tokenizer",
]
