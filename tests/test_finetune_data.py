"""Fine-tuning data: file readers, clear errors for bad files, the held-out split, first-sub-word labels."""

import json
import re

import pytest

from data.finetune_data import (ChatExample, FinetuneDataError, LabelMap, TaggedSentence, TextExample,
                                held_out_split, read_chat_file, read_classification_file, read_tagging_file)
from minilm.finetune.encode import IGNORE_INDEX, encode_tagged_sentences, encode_text_examples
from finetune_fixtures import tiny_wordpiece


def test_headerless_csv_with_bom_and_a_quoted_newline_reads_by_position(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes('\ufeff"1","a fine,\nlong film"\r\n"-1","dull"\r\n'.encode("utf-8"))
    examples = read_classification_file(path, text_column="1", label_column="0")
    assert examples == [TextExample("a fine,\nlong film", "1"), TextExample("dull", "-1")]


def test_tsv_and_jsonl_read_named_columns_with_a_text_pair(tmp_path):
    (tmp_path / "pairs.tsv").write_text("premise\thypothesis\tgold\nit rains\tit is wet\tyes\n")
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"premise": "it rains", "hypothesis": "it is wet",
                                                      "gold": "yes"}) + "\n")
    for name in ("pairs.tsv", "pairs.jsonl"):
        examples = read_classification_file(tmp_path / name, "premise", "gold", "hypothesis")
        assert examples == [TextExample("it rains", "yes", "it is wet")]


def test_missing_label_column_is_an_error_naming_the_column_and_the_flag(tmp_path):
    path = tmp_path / "no_label.csv"
    path.write_text("text,sentiment\ngood film,pos\n")
    with pytest.raises(FinetuneDataError, match=r"no 'label' column .*--label_column"):
        read_classification_file(path)


def test_label_unseen_in_training_is_an_error_naming_it():
    label_map = LabelMap.from_labels(["neg", "pos"])
    with pytest.raises(FinetuneDataError, match=r"val example 2: label 'neutral' was not in the training data"):
        encode_text_examples([TextExample("good", "pos"), TextExample("so-so", "neutral")], tiny_wordpiece(),
                             "bert", label_map, 16, "val")


def test_file_with_only_a_header_is_an_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n")
    with pytest.raises(FinetuneDataError, match="holds no examples"):
        read_classification_file(path)


def test_split_that_would_leave_validation_empty_is_an_error():
    with pytest.raises(FinetuneDataError, match="one side would be empty"):
        held_out_split([TextExample("only one", "pos")], 0.1)


def test_held_out_split_ignores_file_order():
    examples = [TextExample(f"review number {i}", "pos" if i % 2 else "neg") for i in range(50)]
    train, val = held_out_split(examples, 0.2)
    train_rev, val_rev = held_out_split(examples[::-1], 0.2)
    assert len(val) == 10
    assert {e.text for e in val} == {e.text for e in val_rev}
    assert not {e.text for e in val} & {e.text for e in train}


def test_conll_file_reads_word_first_tag_last_and_skips_docstart(tmp_path):
    path = tmp_path / "ner.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\nJohn NNP B-NP B-PER\nlives VBZ B-VP O\n\nParis NNP B-NP B-LOC\n")
    assert read_tagging_file(path) == [TaggedSentence(["John", "lives"], ["B-PER", "O"]),
                                       TaggedSentence(["Paris"], ["B-LOC"])]


def test_word_slash_tag_lines_split_on_the_last_slash(tmp_path):
    path = tmp_path / "pos.txt"
    path.write_text("The/DT 1/2/CD cut/NN ./.\n")
    assert read_tagging_file(path) == [TaggedSentence(["The", "1/2", "cut", "."], ["DT", "CD", "NN", "."])]


def test_tag_goes_on_the_first_sub_word_and_the_rest_are_ignored():
    sentence = TaggedSentence(["the", "unhappy", "films"], ["DT", "JJ", "NNS"])
    label_map = LabelMap.from_labels(sentence.tags)
    (encoded,), n_cut = encode_tagged_sentences([sentence], tiny_wordpiece(), "bert", label_map, 32, "train")
    assert tiny_wordpiece().decode(encoded["input_ids"]) == "[CLS] the unhappy films [SEP]"
    # [CLS] the un ##happy film ##s [SEP]
    ids = label_map.ids
    assert encoded["labels"] == [IGNORE_INDEX, ids["DT"], ids["JJ"], IGNORE_INDEX, ids["NNS"], IGNORE_INDEX,
                                 IGNORE_INDEX]
    assert n_cut == 0


# Chat files (instruction tuning)

def write_chat_lines(tmp_path, *rows) -> str:
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_chat_file_reads_one_conversation_per_line(tmp_path):
    messages = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    path = write_chat_lines(tmp_path, {"messages": messages}, {"messages": [{"role": "system", "content": "Be kind."},
                                                                           *messages]})
    examples = read_chat_file(path)
    assert examples[0] == ChatExample(messages) and [m["role"] for m in examples[1].messages][0] == "system"


@pytest.mark.parametrize("row, message", [
    ({"text": "hi"}, 'expected {"messages"'),
    ({"messages": [{"role": "user", "content": "Hi?"}]}, "no assistant message"),
    ({"messages": [{"role": "bot", "content": "Hi?"}]}, "is not a message"),
    ({"messages": [{"role": "assistant", "content": 3}]}, "is not a message"),
])
def test_a_chat_line_that_is_not_a_conversation_is_refused_naming_the_line(tmp_path, row, message):
    good = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}
    with pytest.raises(FinetuneDataError, match=f"line 2: .*{re.escape(message)}"):
        read_chat_file(write_chat_lines(tmp_path, good, row))
