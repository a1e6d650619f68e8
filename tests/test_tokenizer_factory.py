"""One interface for every kind: build_tokenizer / load_tokenizer dispatch, and the command line."""

import subprocess
import sys

import pytest

from data.assets import fetch
from data.tokenizers import NAMED_VOCABULARIES, TOKENIZER_KINDS, named_tokenizer
from tokenizer import Tokenizer, build_tokenizer, load_tokenizer


@pytest.fixture(scope="module")
def play():
    return sorted(fetch("shakespeare-plays").glob("*/*.md"))[0].read_text(encoding="utf-8")


def make(kind: str, text: str) -> Tokenizer:
    """A trained tokenizer of a trainable kind, the fetched real vocabulary of a named one."""
    return named_tokenizer(kind) if kind in NAMED_VOCABULARIES else build_tokenizer(kind, text=text, vocab_size=1000)


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_every_kind_builds_encodes_saves_and_loads(kind, play, tmp_path):
    tok = make(kind, play)
    assert isinstance(tok, Tokenizer)
    ids = tok.encode(play[:3000])
    assert ids and all(0 <= i < tok.vocab_size for i in ids)
    assert all(0 <= i < tok.vocab_size for i in tok.special_ids.values())
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert type(again) is type(tok)
    assert again.encode(play[:3000]) == ids


@pytest.mark.parametrize("kind", ["char", "bpe", "gpt2", "sentencepiece"])
def test_lossless_kinds_round_trip(kind, play):
    tok = make(kind, play)
    assert tok.decode(tok.encode(play[:5000])) == play[:5000]


def test_build_tokenizer_refuses_a_named_vocabulary_and_says_where_it_is_fetched():
    with pytest.raises(ValueError, match="data/tokenizers.py"):
        build_tokenizer("gpt2", text="some text", vocab_size=1000)


def test_trainable_kind_without_text_is_rejected():
    with pytest.raises(ValueError, match="the training text is empty"):
        build_tokenizer("bpe", vocab_size=1000)


def test_trainable_kind_without_vocab_size_is_rejected(play):
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer("wordpiece", text=play)


def test_cli_encode_prints_ids_and_pieces():
    out = subprocess.run([sys.executable, "-m", "tokenizer", "encode", "--tokenizer", "gpt2", "Hello world"],
                         capture_output=True, text=True, check=True).stdout
    assert "[15496, 995]" in out and "'Ġworld'" in out


def test_cli_train_saves_a_loadable_tokenizer(play, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(play, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "tokenizer", "train", "--kind", "wordpiece", "--vocab_size", "900",
                    str(corpus), str(tmp_path / "out")], capture_output=True, text=True, check=True)
    assert load_tokenizer(tmp_path / "out").vocab_size == 900
