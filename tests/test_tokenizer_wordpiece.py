"""WordPiece: parity with transformers' BertTokenizerFast on the real BERT uncased vocabulary (singles,
pairs, truncation, padding), the basic tokenizer's steps, training, save/load and corrupt files."""

import unicodedata

import pytest
from test_tokenizer_corpus import varied_documents

from data.assets import fetch
from tokenizer import TokenizerFileError, WordPieceTokenizer, load_tokenizer
from tokenizer.bert_basic import basic_tokenize


@pytest.fixture(scope="module")
def bert():
    return WordPieceTokenizer.from_vocab_file(fetch("bert-uncased-vocab"))


@pytest.fixture(scope="module")
def reference():
    from transformers import BertTokenizerFast
    return BertTokenizerFast(vocab=str(fetch("bert-uncased-vocab")), do_lower_case=True)


@pytest.fixture(scope="module")
def documents():
    return varied_documents(stable_unicode=True)


def test_real_vocabulary_special_ids(bert):
    assert bert.vocab_size == 30522
    assert bert.special_ids == {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
    assert (bert.pad_id, bert.unk_id, bert.cls_id, bert.sep_id, bert.mask_id) == (0, 100, 101, 102, 103)


def test_single_texts_match_transformers(bert, reference, documents):
    for doc in documents:
        assert bert.encode_plus(doc) == dict(reference(doc)), doc


def test_pairs_with_truncation_and_padding_match_transformers(bert, reference, documents):
    for i, (a, b) in enumerate(zip(documents[::2], documents[1::2])):
        max_length = 8 + (i * 7) % 90
        ours = bert.encode_plus(a, b, max_length=max_length, truncation=True, padding=True)
        theirs = reference(a, b, max_length=max_length, truncation="longest_first", padding="max_length")
        assert ours == dict(theirs), (a, b, max_length)


def test_single_texts_with_truncation_match_transformers(bert, reference, documents):
    for i, doc in enumerate(documents[:300]):
        max_length = 3 + i % 40
        ours = bert.encode_plus(doc, max_length=max_length, truncation=True)
        assert ours == dict(reference(doc, max_length=max_length, truncation=True)), doc


@pytest.mark.parametrize("len_a, len_b", [(10, 10), (12, 5), (3, 20), (30, 2), (9, 8), (0, 40)])
def test_longest_first_truncation_matches_transformers_for_lengths(bert, reference, len_a, len_b):
    a, b = " ".join(["hello"] * len_a), " ".join(["world"] * len_b)
    for max_length in range(3, len_a + len_b + 5):
        ours = bert.encode_plus(a, b, max_length=max_length, truncation=True)
        assert ours == dict(reference(a, b, max_length=max_length, truncation=True)), max_length


def test_every_stable_unicode_character_matches_transformers(bert, reference):
    """Each character Unicode 3.2 already had (same category since), alone inside a word."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF
             and unicodedata.ucd_3_2_0.category(chr(c)) == unicodedata.category(chr(c)) not in ("Cn", "Co")]
    texts = [f"q{c}q" for c in chars]
    theirs = reference.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    mismatched = [t for t, r in zip(texts, theirs) if bert.encode(t) != r.ids]
    assert mismatched == []


def test_encode_has_no_special_tokens_and_encode_plus_adds_them(bert):
    ids = bert.encode("hello world")
    assert bert.cls_id not in ids and bert.sep_id not in ids
    assert bert.encode_plus("hello world")["input_ids"] == [bert.cls_id, *ids, bert.sep_id]


def test_greedy_longest_match_uses_continuation_pieces(bert):
    # "un" and "una" are both pieces: the longest wins, then the rest is spelled with "##" pieces
    assert bert.tokenize("unaffable") == ["una", "##ffa", "##ble"]


def test_word_longer_than_limit_is_unknown(bert):
    assert bert.encode("a" * 101) == [bert.unk_id]
    assert bert.encode("a" * 100) != [bert.unk_id]


def test_basic_tokenizer_steps():
    text = "Héllo,\tWORLD!\x00 don't 我们\u200b"
    assert basic_tokenize(text) == ["hello", ",", "world", "!", "don", "'", "t", "我", "们"]
    assert basic_tokenize("Héllo", lowercase_text=False) == ["Héllo"]


def test_capital_sigma_lowercases_without_final_form():
    assert basic_tokenize("ΑΣ") == ["ασ"]


def test_padding_masks_pad_positions(bert):
    out = bert.encode_plus("hi", max_length=6, padding=True)
    assert out["input_ids"][3:] == [bert.pad_id] * 3
    assert out["attention_mask"] == [1, 1, 1, 0, 0, 0]


def test_truncation_without_max_length_is_rejected(bert):
    with pytest.raises(ValueError, match="max_length"):
        bert.encode_plus("hi", truncation=True)


def test_decode_glues_continuations(bert):
    ids = bert.encode_plus("unaffable people")["input_ids"]
    assert bert.decode(ids) == "[CLS] unaffable people [SEP]"
    assert bert.decode(ids, skip_special=True) == "unaffable people"


def shakespeare_sample():
    plays = sorted(fetch("shakespeare-plays").glob("*/*.md"))
    return plays[0].read_text(encoding="utf-8")


def test_trained_vocabulary_has_requested_size_and_specials_first():
    tok = WordPieceTokenizer.train(shakespeare_sample(), vocab_size=1500)
    assert tok.vocab_size == 1500
    assert tok.vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_training_merges_most_frequent_pair_first():
    # words: "ab" x3, "abc" x2, "c" x1 -> symbols a, b, c, ##a, ##b, ##c; (a, ##b) occurs 5 times -> "ab"
    # then (ab, ##c) occurs 2 times -> "abc"
    tok = WordPieceTokenizer.train("ab ab ab abc abc c", vocab_size=5 + 6 + 2)
    assert tok.vocab[-2:] == ["ab", "abc"]


def test_trained_vocabulary_spells_every_training_word_without_unknown():
    text = shakespeare_sample()
    tok = WordPieceTokenizer.train(text, vocab_size=1500)
    assert tok.unk_id not in tok.encode(text)


def test_trained_tokenizer_survives_save_and_load(tmp_path):
    text = shakespeare_sample()
    tok = WordPieceTokenizer.train(text, vocab_size=1200)
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, WordPieceTokenizer) and again.vocab == tok.vocab
    assert again.encode_plus(text[:500]) == tok.encode_plus(text[:500])


def test_vocabulary_with_repeated_piece_gives_clear_error(tmp_path):
    WordPieceTokenizer.train("ab ab ab abc abc c", vocab_size=13).save(tmp_path)
    with open(tmp_path / "vocab.txt", "a") as f:
        f.write("ab\n")
    with pytest.raises(TokenizerFileError, match="'ab' appears more than once"):
        load_tokenizer(tmp_path)


def test_vocabulary_without_special_tokens_gives_clear_error(tmp_path):
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    with pytest.raises(TokenizerFileError, match="special tokens"):
        WordPieceTokenizer.from_vocab_file(tmp_path / "vocab.txt")
