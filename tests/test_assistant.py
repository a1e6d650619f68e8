"""The customer-service assistant: reading chatterbot YAML, the two indexes, the threshold, the reply or its
decline, the terminal loop, and what the uncased vocabulary makes of Chinese (RAG: tests/test_assistant_rag.py)."""

import io

import pytest
import torch

from common.errors import run_command
from data.assets import fetch
from data.chatterbot import read_conversations, read_language, unique_questions
from data.chatterbot_paraphrases import HELD_OUT_CATEGORIES, PARAPHRASES
from data.finetune_data import FinetuneDataError
from finetune_fixtures import save_bert_base, tiny_bert, tiny_wordpiece
from minilm.assistant import __main__ as assistant_cli
from minilm.assistant.assistant import UNKNOWN, Assistant
from minilm.assistant.encoder import SentenceEncoder
from minilm.assistant.evaluation import balanced_accuracy, tune_threshold
from minilm.assistant.retrieval import EmbeddingIndex, TfidfIndex
from minilm.assistant.vocabulary import vocabulary_coverage
from tokenizer import WordPieceTokenizer

TINY_CORPUS = {
    "films.yml": "categories:\n- films\nconversations:\n- - the film is good\n  - yes, very good\n"
                 "- - the plot was dull\n  - a dull plot, indeed\n- - the film is good\n  - a fine film\n",
    "places.yml": "categories:\n- places\nconversations:\n- - john lives in paris\n  - paris is great\n"
                  "- just one string, not a list\n",
}


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "english").mkdir()
    for name, text in TINY_CORPUS.items():
        (tmp_path / "english" / name).write_text(text, encoding="utf-8")
    return tmp_path


# ------------------------------------------------------------------------------------------ the corpus

def test_a_yaml_file_without_conversations_is_an_error_naming_it(tmp_path):
    (tmp_path / "broken.yml").write_text("categories:\n- nothing\n", encoding="utf-8")
    with pytest.raises(FinetuneDataError, match=r"broken.yml: no `conversations:` list"):
        read_conversations(tmp_path / "broken.yml")


def test_a_conversation_that_is_not_a_list_is_skipped_and_said(corpus, capsys):
    conversations = read_conversations(corpus / "english" / "places.yml")
    assert [c.question for c in conversations] == ["john lives in paris"]
    assert "skipped conversation(s) 2" in capsys.readouterr().out


def test_unique_questions_merge_the_answers_of_a_repeated_question(corpus):
    questions = unique_questions(read_language("english", corpus))
    assert [q.text for q in questions] == ["the film is good", "the plot was dull", "john lives in paris"]
    assert questions[0].answers == ["yes, very good", "a fine film"] and questions[0].category == "films"


@pytest.fixture(scope="module")
def english():
    return unique_questions(read_language("english"))


def test_the_english_corpus_has_748_unique_questions_and_trivia_is_the_majority(english):
    questions = english
    assert len(questions) == 748
    assert sum(q.category == "trivia" for q in questions) / len(questions) == pytest.approx(0.348, abs=5e-4)


def test_every_reworded_question_points_at_an_indexed_question(english):
    by_text = {q.text: q for q in english}
    assert all(original in by_text and by_text[original].category not in HELD_OUT_CATEGORIES
               for _, original in PARAPHRASES)


# ---------------------------------------------------------------------------------------- the indexes

def test_tfidf_ranks_by_shared_rare_words():
    index = TfidfIndex(["my printer is broken", "my screen is broken", "the weather is nice"])
    [(first, score), (second, _)] = index.search("printer broken", k=2)
    assert (first, second) == (0, 1) and 0 < score < 1  # "printer" is rarer than "broken"
    assert index.search("zebra", k=1)[0][1] == 0.0  # no shared word, no similarity


def test_an_indexed_text_is_its_own_nearest_neighbour_at_cosine_one():
    encoder = SentenceEncoder(tiny_bert(), tiny_wordpiece())
    index = EmbeddingIndex(encoder, ["the film is good", "john lives in paris", "the plot was dull"])
    [(position, score)] = index.search("john lives in paris", k=1)
    assert position == 1 and score == pytest.approx(1.0, abs=1e-5)


def test_a_padded_batch_encodes_each_text_as_alone():
    encoder = SentenceEncoder(tiny_bert(), tiny_wordpiece())
    together = encoder.encode(["the film", "john lives in paris ."])
    assert torch.allclose(together[0], encoder.encode(["the film"])[0], atol=1e-5)


def test_the_tuned_threshold_separates_answerable_from_unanswerable_scores():
    threshold = tune_threshold([0.9, 0.8, 0.7], [0.3, 0.5, 0.75])
    assert 0.5 < threshold < 0.7 and balanced_accuracy(threshold, [0.9, 0.8, 0.7], [0.3, 0.5, 0.75]) == pytest.approx(5 / 6)


# -------------------------------------------------------------------------------------------- replies

class FixedIndex:
    def __init__(self, score):
        self.score = score

    def search(self, text, k=1):
        return [(0, self.score)]


def test_a_close_question_gets_the_stored_answer_and_a_far_one_a_decline(corpus):
    questions = unique_questions(read_language("english", corpus))
    assert Assistant(FixedIndex(0.9), questions, 0.5).reply("x").text == "yes, very good"
    declined = Assistant(FixedIndex(0.1), questions, 0.5).reply("x")
    assert (declined.text, declined.source) == (UNKNOWN, "unknown")


def test_the_terminal_loop_answers_each_line_until_quit(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("the film is good\nquit\nthe plot was dull\n"))
    assistant_cli.main(["--base", str(save_bert_base(tmp_path / "bert")), "--corpus", str(corpus)])
    out = capsys.readouterr().out
    assert "yes, very good" in out and "a dull plot" not in out  # nothing after quit


@pytest.mark.parametrize("argv, message", [
    (["--threshold", "2"], "--threshold is a cosine similarity"),
    (["--language", "klingon"], "klingon: no .yml files"),
])
def test_bad_assistant_flags_are_errors(corpus, tmp_path, capsys, argv, message):
    status = run_command(assistant_cli.main, ["--base", str(save_bert_base(tmp_path / "bert")),
                                              "--corpus", str(corpus), *argv])
    assert status == 2 and message in capsys.readouterr().err


def test_a_corpus_file_without_conversations_stops_the_assistant_with_exit_2(corpus, tmp_path, capsys):
    (corpus / "english" / "empty.yml").write_text("categories:\n- empty\n", encoding="utf-8")
    status = run_command(assistant_cli.main, ["--base", str(save_bert_base(tmp_path / "bert")), "--corpus", str(corpus)])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and "empty.yml" in err


# ------------------------------------------------------------------------------------------- Chinese

def test_most_chinese_characters_are_unknown_to_the_uncased_vocabulary():
    tokenizer = WordPieceTokenizer.from_vocab_file(fetch("bert-uncased-vocab"))
    assert tokenizer.tokenize("什么是ai") == ["[UNK]", "[UNK]", "[UNK]", "ai"]
    coverage = vocabulary_coverage(tokenizer, [q.text for q in unique_questions(read_language("chinese"))])
    assert coverage["unk_share"] > 0.5 and coverage["indistinct"] > 0.1
