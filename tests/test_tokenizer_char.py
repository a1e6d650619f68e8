"""CharTokenizer: vocabulary, round trip, unknown characters, save/load."""

import json

import pytest

from tokenizer import CharTokenizer, TokenizerFileError, build_tokenizer, load_tokenizer

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


def test_vocabulary_is_sorted_distinct_characters():
    tok = CharTokenizer.train(TEXT)
    assert tok.chars == sorted(set(TEXT))
    assert tok.vocab_size == len(set(TEXT))


def test_ids_follow_code_point_order():
    tok = CharTokenizer.train("cab")
    assert tok.encode("abc") == [0, 1, 2]


def test_decode_inverts_encode():
    tok = CharTokenizer.train(TEXT)
    assert tok.decode(tok.encode(TEXT)) == TEXT


def test_unknown_character_error_names_it():
    tok = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match=r"'z'.*position 2"):
        tok.encode("abz")


def test_decode_rejects_out_of_range_id():
    tok = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match="not in range"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="not in range"):
        tok.decode([-1])


def test_save_then_load_gives_same_ids(tmp_path):
    tok = CharTokenizer.train(TEXT)
    tok.save(tmp_path)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["kind"] == "char"
    again = load_tokenizer(tmp_path)
    assert isinstance(again, CharTokenizer)
    assert again.encode(TEXT) == tok.encode(TEXT)


def test_corrupt_file_gives_clear_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"kind": "char", "chars": ')
    with pytest.raises(TokenizerFileError, match="not valid JSON"):
        load_tokenizer(tmp_path)


def test_repeated_characters_in_file_are_rejected(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"kind": "char", "chars": "aab"}')
    with pytest.raises(TokenizerFileError, match="distinct"):
        load_tokenizer(tmp_path)


def test_missing_folder_gives_clear_error(tmp_path):
    with pytest.raises(TokenizerFileError, match="does not exist"):
        load_tokenizer(tmp_path / "nowhere")


def test_build_tokenizer_char_trains_on_text():
    tok = build_tokenizer("char", text=TEXT)
    assert tok.decode(tok.encode(TEXT)) == TEXT


def test_build_tokenizer_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        build_tokenizer("morse", text=TEXT)
