"""Named entities: the BIO check on CoNLL files, the memorising baseline, per-type scores, the real tweets,
and finetune.py's predict / evaluate on a tiny tagger."""

import pytest
import torch

import finetune
from common.errors import run_command
from data.assets import fetch
from data.finetune_data import FinetuneDataError, TaggedSentence, read_tagging_file
from data.ner_data import check_bio_tags, memorise_spans, memorised_baseline, memorised_tags
from finetune_fixtures import save_bert_base
from minilm.finetune.entity_report import entity_scores_by_type, entity_spans, format_entity_table


def write_conll(path, sentences):
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n", encoding="utf-8")
    return path


def sentence(text: str, tags: str) -> TaggedSentence:
    return TaggedSentence(text.split(), tags.split())


# ------------------------------------------------------------------------------------------ BIO check

def test_a_tag_that_is_not_bio_among_bio_tags_is_an_error_naming_its_line(tmp_path):
    path = write_conll(tmp_path / "mixed.conll", [[("john", "B-person"), ("lives", "O")], [("paris", "LOC")]])
    with pytest.raises(FinetuneDataError, match=r"mixed.conll, line 4: tag 'LOC' is not BIO"):
        check_bio_tags(path, read_tagging_file(path))


def test_part_of_speech_tags_pass_the_bio_check_untouched(tmp_path):
    path = write_conll(tmp_path / "pos.conll", [[("the", "DT"), ("film", "NN")]])
    assert check_bio_tags(path, read_tagging_file(path)) is None


def test_an_i_tag_that_continues_no_entity_is_counted_in_a_note(tmp_path):
    path = write_conll(tmp_path / "orphans.conll", [[("the", "O"), ("paris", "I-geo-loc"), ("john", "I-person")]])
    note = check_bio_tags(path, read_tagging_file(path))
    assert "2 I- tag(s) continue no entity" in note and "start of a new entity" in note


def test_the_real_tweets_are_2394_bio_tagged_sentences_of_10_types():
    sentences = read_tagging_file(fetch("ner-wnut16"))
    assert len(sentences) == 2394 and sum(len(s.words) for s in sentences) == 46469
    assert check_bio_tags(fetch("ner-wnut16"), sentences) is None  # all BIO, no I- without its B-
    assert len({t[2:] for s in sentences for t in s.tags if t != "O"}) == 10


# -------------------------------------------------------------------------------- memorising baseline

def test_memorised_baseline_tags_the_longest_seen_span_with_its_most_common_type():
    train = [sentence("new york is big", "B-geo-loc I-geo-loc O O"), sentence("york", "B-person"),
             sentence("york wins", "B-person O"), sentence("i like york", "O O B-geo-loc")]
    spans = memorise_spans(train)
    assert spans == {("new", "york"): "geo-loc", ("york",): "person"}  # york: person twice, geo-loc once
    assert memorised_tags(spans, "i saw new york and york".split()) == ["O", "O", "B-geo-loc", "I-geo-loc", "O",
                                                                      "B-person"]
    assert memorised_tags(spans, "nothing known here".split()) == ["O", "O", "O"]


def test_memorised_baseline_scores_only_the_words_the_model_was_scored_on():
    train = [sentence("john lives in paris", "B-person O O B-geo-loc")]
    val = [sentence("paris and john", "B-geo-loc O B-person")]
    assert memorised_baseline(train, val, [["B-geo-loc", "O"]]) == [["B-geo-loc", "O"]]


# ------------------------------------------------------------------------------------ per-type scores

def test_entity_scores_by_type_count_each_type_alone():
    gold = [["B-person", "I-person", "O", "B-geo-loc"], ["B-person", "O"]]
    predicted = [["B-person", "I-person", "O", "B-person"], ["O", "O"]]
    scores = entity_scores_by_type(gold, predicted)
    assert scores["person"] == {"gold": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert scores["geo-loc"] == {"gold": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_the_entity_table_has_a_row_per_type_and_the_micro_average():
    gold = [["B-person", "O", "B-geo-loc"]]
    table = format_entity_table(gold, {"model": [["B-person", "O", "O"]], "memorised": [["O", "O", "B-geo-loc"]]})
    rows = table.splitlines()
    assert rows[0].split()[:2] == ["type", "gold"] and "memorised P / R / F1" in rows[0]
    assert rows[2].startswith("geo-loc") and rows[3].startswith("person")  # same gold count: by name
    assert rows[-1].split()[:3] == ["all", "(micro)", "2"]


def test_entity_spans_join_the_words_of_each_entity_in_order():
    tagged = list(zip("i met justin bieber in paris".split(), "O O B-person I-person O B-geo-loc".split()))
    assert entity_spans(tagged) == [("justin bieber", "person"), ("paris", "geo-loc")]


# ------------------------------------------------------------------------- a tiny tagger, end to end

NER_SENTENCES = [[("john", "B-person"), ("lives", "O"), ("in", "O"), ("paris", "B-geo-loc"), (".", "O")],
                 [("paris", "B-geo-loc"), ("is", "O"), ("very", "O"), ("good", "O")],
                 [("john", "B-person"), ("is", "O"), ("good", "O"), (".", "O")],
                 [("the", "O"), ("film", "O"), ("was", "O"), ("dull", "O")]] * 6


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ner_run")
    data = write_conll(folder / "train.conll", NER_SENTENCES)
    val = write_conll(folder / "val.conll", [[("paris", "B-geo-loc"), ("is", "O"), ("good", "O")],
                                             [("john", "B-person"), ("was", "O"), ("in", "O"), ("paris", "B-geo-loc")]])
    torch.set_num_threads(1)
    result = finetune.main(["--task", "tag", "--base", str(save_bert_base(folder / "base")), "--data", str(data),
                   "--val_data", str(val), "--lr", "1e-2", "--max_iters", "40", "--batch_size", "8",
                   "--warmup_iters", "4", "--eval_interval", "40", "--eval_iters", "1", "--head_dropout", "0",
                   "--out_dir", str(folder / "run"), "--device", "cpu", "--progress", "false"])
    return folder, result["best"]


def test_predict_prints_the_entities_of_a_sentence(ner_run, capsys):
    folder, _ = ner_run
    capsys.readouterr()
    finetune.main(["predict", "--ckpt", str(folder / "run"), "john lives in paris"])
    out = capsys.readouterr().out.splitlines()
    assert out == ["john/B-person lives/O in/O paris/B-geo-loc", "entities: john (person), paris (geo-loc)"]


def test_evaluate_scores_the_validation_set_of_training_next_to_the_memorising_baseline(ner_run, capsys):
    folder, best_f1 = ner_run
    results = finetune.main(["evaluate", "--ckpt", str(folder / "run")])
    out = capsys.readouterr().out
    assert results[str(folder / "run")]["val_f1"] == pytest.approx(best_f1)  # the best checkpoint, same examples
    assert results["memorised"]["val_f1"] == 1.0  # john and paris were both seen in training
    assert "model P / R / F1" in out and "memorised P / R / F1" in out and "person" in out


@pytest.mark.parametrize("lines, message", [
    ("john\tB-person\nlives\n", "line 2: 'lives' has no tag"),
    ("john\tB-person\nparis\tLOC\n", "line 2: tag 'LOC' is not BIO"),
])
def test_a_broken_conll_file_is_an_error_naming_its_line(tmp_path, capsys, lines, message):
    (tmp_path / "bad.conll").write_text(lines, encoding="utf-8")
    status = run_command(finetune.main, ["--task", "tag", "--base", str(save_bert_base(tmp_path / "base")),
                                         "--data", str(tmp_path / "bad.conll"), "--out_dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and message in err and "bad.conll" in err
