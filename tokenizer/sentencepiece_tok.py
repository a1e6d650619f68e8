"""SentencePiece (unigram or BPE) trained through the ``sentencepiece`` package, behind minilm's interface.

Unlike the hand-written tokenizers, the algorithm lives in the package; this wrapper fixes the options so
that any text round-trips: no normalisation ("identity"), whitespace kept as it is, and byte fallback
(a character outside the vocabulary becomes its UTF-8 bytes, <0x..> pieces, instead of <unk>).
Ids 0-3 are <pad>, <unk>, <s>, </s>.
"""

import io
from pathlib import Path

import sentencepiece as spm

from common.atomic import write_bytes_atomic
from common.errors import ConfigError

from .base import Tokenizer, TokenizerFileError, check_ids, read_config, require, write_config

MODEL_TYPES = ("unigram", "bpe")
SPECIAL_PIECES = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}


class SentencePieceTokenizer(Tokenizer):
    kind = "sentencepiece"

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self.processor = spm.SentencePieceProcessor()
        self.processor.LoadFromSerializedProto(model_proto)

    @classmethod
    def train(cls, text: str, vocab_size: int, model_type: str = "unigram") -> "SentencePieceTokenizer":
        """Train on ``text``, one sentence per line (lines longer than 4,192 bytes are skipped by spm)."""
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type={model_type!r}; choose one of {MODEL_TYPES}")
        lines = [line for line in text.split("\n") if line.strip()]
        if not lines:
            raise ConfigError("SentencePiece learns its vocabulary from text, and the training text is empty")
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type=model_type,
                normalization_rule_name="identity", remove_extra_whitespaces=False, byte_fallback=True,
                character_coverage=1.0, pad_id=0, unk_id=1, bos_id=2, eos_id=3, hard_vocab_limit=False,
                split_digits=False, num_threads=2, minloglevel=2)
        except RuntimeError as err:
            raise ConfigError(f"SentencePiece training failed with a vocab_size of {vocab_size}: {err}") from None
        return cls(model.getvalue())

    @property
    def vocab_size(self) -> int:
        return self.processor.GetPieceSize()

    @property
    def special_ids(self) -> dict[str, int]:
        return dict(SPECIAL_PIECES)

    def encode(self, text: str) -> list[int]:
        return self.processor.EncodeAsIds(text)

    def decode(self, ids) -> str:
        return self.processor.DecodeIds(check_ids(ids, self.vocab_size))

    def tokenize(self, text: str) -> list[str]:
        return self.processor.EncodeAsPieces(text)

    def save(self, folder) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(folder / "sentencepiece.model", self.model_proto)
        write_config(folder, {"kind": self.kind, "model_file": "sentencepiece.model"})

    @classmethod
    def load(cls, folder) -> "SentencePieceTokenizer":
        folder = Path(folder)
        config = read_config(folder, cls.kind)
        model_file = folder / require(config, "model_file", str, folder / "tokenizer.json")
        if not model_file.is_file():
            raise TokenizerFileError(f"{model_file} is missing; save the tokenizer again")
        try:
            return cls(model_file.read_bytes())
        except (RuntimeError, OSError) as err:
            raise TokenizerFileError(f"{model_file} is not a SentencePiece model ({err}); the file is corrupt") from None
