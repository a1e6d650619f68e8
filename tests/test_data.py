"""Data preparation: the Shakespeare conversion and split, the token memmaps, get_batch, --data checks."""

import json
import textwrap

import numpy as np
import pytest
import torch

from common import atomic
from data.prepare import fingerprint_tokenizer, prepare_token_files, read_text_file, split_text, token_dtype
from data.shakespeare import load_plays, play_to_text, shakespeare_splits, split_play_names
from minilm.training.lm_task import get_batch


class ByteTokenizer:
    """The smallest tokenizer prepare.py accepts: UTF-8 bytes as ids, plus an offset to test large vocabularies."""

    def __init__(self, offset=0):
        self.offset = offset
        self.encode_calls = 0

    @property
    def vocab_size(self):
        return self.offset + 256

    def encode(self, text):
        self.encode_calls += 1
        return [b + self.offset for b in text.encode("utf-8")]

    def save(self, folder):
        with open(f"{folder}/tokenizer.json", "w") as f:
            json.dump({"kind": "bytes", "offset": self.offset}, f)


# "|" stands for the two trailing spaces of a Markdown line break (kept visible, editors strip them).
SAMPLE_PLAY = textwrap.dedent("""\
    # The Sample Play

    ## ACT I

    ### SCENE I. A heath.

    _Enter FIRST WITCH and SECOND WITCH, with a long train of
    attendants_

    **FIRST WITCH**|
    When shall we two meet again|
    In thunder, lightning, or in rain?

    **SECOND WITCH**|
    _\\[Aside]_|
    When the hurlyburly's done,\\--|
    When the battle's lost and won.

    _Thunder_

    That will be ere the set of sun.

    SONG.

    *Exeunt.*

    1\\. A lively flourish of Trumpets.|
    2\\. Then, two Judges.

    ### SCENE II. A camp.

    RICHARD

    **PLANTAGENET**|
    What bloody man is that? &amp; who __\\[ ]_|
    """).replace("|\n", "  \n")


def sample_lines():
    return play_to_text(SAMPLE_PLAY).split("\n")


# --- play_to_text ---------------------------------------------------------------------------------

def test_speaker_line_becomes_name_and_colon():
    lines = sample_lines()
    assert lines[0] == "FIRST WITCH:"
    assert "SECOND WITCH:" in lines


def test_headings_are_dropped():
    text = play_to_text(SAMPLE_PLAY)
    for heading in ("Sample Play", "ACT", "SCENE", "heath", "camp", "#"):
        assert heading not in text


def test_stage_directions_and_labels_are_dropped_single_multi_line_inline_and_lists():
    text = play_to_text(SAMPLE_PLAY)
    for direction in ("Enter", "attendants", "Aside", "Thunder", "SONG", "Exeunt", "flourish", "Judges",
                      "_", "*", "[", "]"):
        assert direction not in text


def test_verse_line_breaks_lose_their_trailing_spaces():
    assert "When shall we two meet again  \n" in SAMPLE_PLAY
    lines = sample_lines()
    assert "When shall we two meet again" in lines
    assert all(line == line.rstrip() for line in lines)


def test_speeches_are_separated_by_exactly_one_blank_line():
    text = play_to_text(SAMPLE_PLAY)
    assert "In thunder, lightning, or in rain?\n\nSECOND WITCH:\n" in text
    assert "\n\n\n" not in text and text.endswith("\n") and not text.endswith("\n\n")


def test_text_after_a_direction_continues_the_same_speech():
    text = play_to_text(SAMPLE_PLAY)
    assert "When the battle's lost and won.\nThat will be ere the set of sun.\n" in text


def test_markdown_escapes_and_entities_are_unescaped():
    text = play_to_text(SAMPLE_PLAY)
    assert "When the hurlyburly's done,--\n" in text
    assert "What bloody man is that? & who\n" in text


def test_speaker_name_split_over_two_lines_is_joined():
    assert "RICHARD PLANTAGENET:" in sample_lines()


def test_speaker_with_no_words_left_is_dropped():
    assert play_to_text("**GHOST**  \n_Exit_\n\n**HAMLET**  \nSpeak.\n") == "HAMLET:\nSpeak.\n"


# --- the real corpus ------------------------------------------------------------------------------

def test_all_38_plays_load_as_plain_text_of_the_expected_size():
    plays = load_plays()
    assert len(plays) == 38 and list(plays) == sorted(plays)
    assert {"hamlet", "macbeth", "the-tempest", "edward-iii"} <= set(plays)
    total = sum(len(text) for text in plays.values())
    assert 4_600_000 < total < 5_000_000  # 5.3 MB of Markdown less its markup
    corpus = "".join(plays.values())
    assert not set("*_#[]\\") & set(corpus)  # no Markdown left
    assert plays["hamlet"].startswith("BERNARDO:\nWho's there?\n\nFRANCISCO:\n")


def test_split_play_names_are_disjoint_cover_all_and_deterministic():
    names = [f"play-{i:02d}" for i in range(38)]
    train, val = split_play_names(names, val_fraction=0.1)
    assert len(val) == 4 and not set(train) & set(val) and set(train) | set(val) == set(names)
    assert split_play_names(list(reversed(names)), 0.1) == (train, val)  # order of input is irrelevant


def test_shakespeare_val_text_is_exactly_the_held_out_plays():
    plays = load_plays()
    train_names, val_names = split_play_names(list(plays), 0.1)
    train, val = shakespeare_splits(0.1)
    assert val == "\n".join(plays[name] for name in val_names)
    assert all(plays[name] not in train for name in val_names)
    assert 0.07 < len(val) / (len(train) + len(val)) < 0.13


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1])
def test_split_play_names_rejects_fraction_outside_zero_one(bad):
    with pytest.raises(ValueError, match="val_fraction"):
        split_play_names(["a", "b", "c"], bad)


# --- token files ----------------------------------------------------------------------------------

SPLITS = {"train": "First Citizen:\nBefore we proceed any further, hear me speak.\n", "val": "All:\nSpeak.\n"}


def test_token_files_hold_the_encoded_ids(tmp_path):
    tok = ByteTokenizer()
    arrays = prepare_token_files(SPLITS, tok, tmp_path, "fp")
    for name, text in SPLITS.items():
        assert arrays[name].dtype == np.uint16
        assert arrays[name].tolist() == tok.encode(text)
    assert (tmp_path / "train.bin").stat().st_size == 2 * len(SPLITS["train"].encode())


def test_dtype_is_uint16_up_to_65536_ids_and_uint32_beyond(tmp_path):
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32
    tok = ByteTokenizer(offset=70_000)
    arrays = prepare_token_files(SPLITS, tok, tmp_path, "fp")
    assert arrays["train"].dtype == np.uint32 and int(arrays["train"].max()) >= 70_000


def test_token_files_are_reused_when_nothing_changed(tmp_path):
    tok = ByteTokenizer()
    prepare_token_files(SPLITS, tok, tmp_path, "fp")
    calls = tok.encode_calls
    prepare_token_files(SPLITS, tok, tmp_path, "fp")
    assert tok.encode_calls == calls


def test_token_files_are_rebuilt_when_a_text_changes(tmp_path):
    tok = ByteTokenizer()
    prepare_token_files(SPLITS, tok, tmp_path, "fp")
    changed = {**SPLITS, "val": "All:\nSpeak, speak.\n"}
    arrays = prepare_token_files(changed, tok, tmp_path, "fp")
    assert arrays["val"].tolist() == tok.encode(changed["val"])


def test_token_files_are_rebuilt_when_the_tokenizer_fingerprint_changes(tmp_path):
    prepare_token_files(SPLITS, ByteTokenizer(), tmp_path, "fingerprint-a")
    other = ByteTokenizer(offset=1)  # encodes differently; the caller says so with a new fingerprint
    arrays = prepare_token_files(SPLITS, other, tmp_path, "fingerprint-b")
    assert arrays["train"].tolist() == other.encode(SPLITS["train"])


def test_leftover_temporary_file_without_meta_is_not_trusted(tmp_path):
    (tmp_path / ".train.bin.999.tmp").write_bytes(b"\x01\x00" * 5)  # a half write from a dead process
    (tmp_path / "train.bin").write_bytes(b"\x01\x00" * 5)  # and a bin no meta.json vouches for
    tok = ByteTokenizer()
    arrays = prepare_token_files(SPLITS, tok, tmp_path, "fp")
    assert arrays["train"].tolist() == tok.encode(SPLITS["train"])


def test_crash_before_the_rename_never_leaves_old_meta_beside_new_data(tmp_path, monkeypatch):
    tok = ByteTokenizer()
    prepare_token_files(SPLITS, tok, tmp_path, "fp")
    changed = {"train": SPLITS["train"].upper(), "val": SPLITS["val"]}  # same length: sizes can't tell

    def crash_on_val(src, dst):  # train.bin is renamed into place, then the process dies
        if str(dst).endswith("val.bin"):
            raise KeyboardInterrupt
        real_replace(src, dst)

    real_replace = atomic.os.replace
    monkeypatch.setattr(atomic.os, "replace", crash_on_val)
    with pytest.raises(KeyboardInterrupt):
        prepare_token_files(changed, tok, tmp_path, "fp")
    monkeypatch.undo()
    assert not list(tmp_path.glob(".*.tmp"))  # the half-written file was cleaned up
    arrays = prepare_token_files(SPLITS, tok, tmp_path, "fp")  # the old texts again
    assert arrays["train"].tolist() == tok.encode(SPLITS["train"])


def test_truncated_token_file_is_not_trusted(tmp_path):
    tok = ByteTokenizer()
    prepare_token_files(SPLITS, tok, tmp_path, "fp")
    (tmp_path / "train.bin").write_bytes(b"\x00\x00" * 3)
    arrays = prepare_token_files(SPLITS, tok, tmp_path, "fp")
    assert arrays["train"].tolist() == tok.encode(SPLITS["train"])


def test_ids_outside_the_vocabulary_are_rejected(tmp_path):
    class LyingTokenizer(ByteTokenizer):
        vocab_size = 10  # but encode returns bytes up to 255

    with pytest.raises(ValueError, match="vocab_size"):
        prepare_token_files(SPLITS, LyingTokenizer(), tmp_path, "fp")


def test_fingerprint_is_equal_for_equal_tokenizers_and_differs_otherwise():
    assert fingerprint_tokenizer(ByteTokenizer()) == fingerprint_tokenizer(ByteTokenizer())
    assert fingerprint_tokenizer(ByteTokenizer()) != fingerprint_tokenizer(ByteTokenizer(offset=1))


# --- get_batch ------------------------------------------------------------------------------------

TOKENS = (np.arange(1000) * 7 % 65_521).astype(np.uint16)  # distinct values: a window shows where it came from


def test_get_batch_targets_are_inputs_shifted_by_one():
    x, y = get_batch(TOKENS, batch_size=8, block_size=16, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    for row_x, row_y in zip(x, y):
        start = int(np.flatnonzero(TOKENS == int(row_x[0]))[0])
        assert row_x.tolist() == TOKENS[start:start + 16].tolist()
        assert row_y.tolist() == TOKENS[start + 1:start + 17].tolist()


def test_get_batch_is_reproduced_from_a_saved_generator_state():
    generator = torch.Generator().manual_seed(1)
    get_batch(TOKENS, 4, 16, generator)
    state = generator.get_state()  # as a checkpoint would save it
    expected = get_batch(TOKENS, 4, 16, generator)
    resumed = torch.Generator()
    resumed.set_state(state)
    got = get_batch(TOKENS, 4, 16, resumed)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_get_batch_reaches_the_last_token_but_never_past_it():
    tokens = np.arange(10, dtype=np.uint16)
    x, y = get_batch(tokens, batch_size=200, block_size=8, generator=torch.Generator().manual_seed(0))
    assert int(y.max()) == 9  # starts 0 and 1 both occur among 200 draws


def test_get_batch_rejects_a_split_shorter_than_a_block():
    with pytest.raises(ValueError, match="block_size"):
        get_batch(np.arange(16, dtype=np.uint16), 2, 16, torch.Generator())


# --- --data files ---------------------------------------------------------------------------------

def test_read_text_file_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_text_file(tmp_path / "nope.txt")


def test_read_text_file_empty_file_is_rejected(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        read_text_file(tmp_path / "empty.txt")


def test_read_text_file_non_utf8_file_is_rejected(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("Bened\xedck".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        read_text_file(tmp_path / "latin1.txt")


def test_read_text_file_too_short_for_training_is_rejected(tmp_path):
    (tmp_path / "short.txt").write_text("To be, or not to be")
    with pytest.raises(ValueError, match="at least 100"):
        read_text_file(tmp_path / "short.txt", min_chars=100)
    assert read_text_file(tmp_path / "short.txt", min_chars=19) == "To be, or not to be"


def test_split_text_holds_out_the_end():
    text = "abcdefghij" * 10
    train, val = split_text(text, 0.1)
    assert train == text[:90] and val == text[90:]


def test_split_text_rejects_a_split_that_would_be_empty():
    with pytest.raises(ValueError, match="empty"):
        split_text("a", 0.1)
