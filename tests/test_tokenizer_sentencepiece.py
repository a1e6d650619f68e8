"""SentencePiece behind the shared interface: training both model types, round trips, save/load."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.assets import fetch
from tokenizer import SentencePieceTokenizer, TokenizerFileError, load_tokenizer


@pytest.fixture(scope="module")
def play():
    return sorted(fetch("shakespeare-plays").glob("*/*.md"))[0].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def unigram(play):
    return SentencePieceTokenizer.train(play, vocab_size=800, model_type="unigram")


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_training_gives_requested_vocabulary_size(play, model_type):
    assert SentencePieceTokenizer.train(play, vocab_size=800, model_type=model_type).vocab_size == 800


def test_special_ids_are_pad_unk_bos_eos(unigram):
    assert unigram.special_ids == {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
    assert [unigram.processor.IdToPiece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]


def test_frequent_word_is_one_piece(unigram):
    assert unigram.tokenize("the") == ["▁the"]  # "▁" marks the (dummy) space before a word


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60))
def test_decode_inverts_encode(unigram, text):
    assert unigram.decode(unigram.encode(text)) == text


def test_save_then_load_gives_same_ids(unigram, play, tmp_path):
    unigram.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, SentencePieceTokenizer)
    assert again.encode(play[:2000]) == unigram.encode(play[:2000])


def test_corrupt_model_file_gives_clear_error(unigram, tmp_path):
    unigram.save(tmp_path)
    (tmp_path / "sentencepiece.model").write_bytes(b"not a model")
    with pytest.raises(TokenizerFileError, match="not a SentencePiece model"):
        load_tokenizer(tmp_path)


def test_unknown_model_type_is_rejected(play):
    with pytest.raises(ValueError, match="model_type"):
        SentencePieceTokenizer.train(play, vocab_size=800, model_type="wordpiece")
