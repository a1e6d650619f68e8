"""Tagging metrics: token accuracy and BIO entity precision / recall / F1, against counts done by hand."""

import pytest

from minilm.finetune.tagging_metrics import bio_entities, entity_scores, is_bio_tagset, token_accuracy


def test_entities_are_read_with_type_and_inclusive_ends():
    assert bio_entities(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 1), ("LOC", 3, 3)}


def test_b_after_b_of_the_same_type_starts_a_second_entity():
    assert bio_entities(["B-PER", "B-PER", "I-PER"]) == {("PER", 0, 0), ("PER", 1, 2)}


def test_i_without_b_opens_an_entity_as_conlleval_reads_it():
    # O I-PER I-PER: the I- after O opens a PER entity; I-LOC after PER opens a LOC entity.
    assert bio_entities(["O", "I-PER", "I-PER", "I-LOC"]) == {("PER", 1, 2), ("LOC", 3, 3)}


def test_partial_span_counts_as_wrong():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "O", "O", "B-LOC"]]  # PER cut short: wrong; LOC right -> 1 of 2 found, 1 of 2 right
    assert entity_scores(gold, pred) == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


def test_wrong_type_counts_as_wrong_even_with_the_right_span():
    gold = [["B-PER", "I-PER", "O"], ["B-ORG"]]
    pred = [["B-ORG", "I-ORG", "O"], ["B-ORG"]]  # 1 of 2 predicted right; 1 of 2 gold found
    assert entity_scores(gold, pred) == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


def test_prediction_with_i_without_b_matches_a_gold_entity_of_the_same_span():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]]
    pred = [["I-PER", "I-PER", "O", "B-LOC", "O"]]  # PER right (I- opens it), LOC cut short
    assert entity_scores(gold, pred) == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


def test_precision_and_recall_differ_when_extra_entities_are_predicted():
    gold = [["B-LOC", "O", "O", "O"]]
    pred = [["B-LOC", "O", "B-PER", "B-MISC"]]  # 1 right of 3 predicted, 1 of 1 gold found
    scores = entity_scores(gold, pred)
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(1.0)
    assert scores["f1"] == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))  # 0.5


def test_no_predicted_entities_gives_zero_scores_not_a_division_error():
    assert entity_scores([["B-PER"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_token_accuracy_counts_words_over_all_sentences():
    gold = [["DT", "NN"], ["VB", "DT", "NN"]]
    pred = [["DT", "VB"], ["VB", "DT", "NN"]]
    assert token_accuracy(gold, pred) == pytest.approx(4 / 5)


def test_sentences_of_different_lengths_are_an_error():
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        token_accuracy([["DT", "NN"]], [["DT"]])


def test_bio_tagsets_are_told_from_pos_tagsets():
    assert is_bio_tagset(["O", "B-PER", "I-PER", "B-LOC"])
    assert not is_bio_tagset(["DT", "NN", "VB"])
    assert not is_bio_tagset(["O"])  # no entity tag at all
