"""Knowledge distillation (minilm/finetune/distill.py): the loss terms, the student cut from the teacher,
and finetune.py --teacher end to end on a tiny 4-block teacher, bad inputs included."""

import json

import pytest
import torch
import torch.nn.functional as F

import finetune
from common.errors import ConfigError, run_command
from finetune_fixtures import VOCAB, save_base, sentiment_rows, tiny_wordpiece, write_csv
from minilm import Bert, BertConfig
from data.transfer_text import read_transfer_texts
from minilm.finetune.checkpoints import Base
from minilm.finetune.distill import (DistillConfig, DistillationTask, Teacher, drop_labelled_overlap, few_labels,
                                     hidden_cosine_loss, matched_teacher_blocks, soft_cross_entropy_kl,
                                     student_backbone, student_base, unlabelled_batch)
from minilm.finetune.heads import SequenceClassifier
from minilm.finetune.tasks import ClassificationTask
from minilm.finetune.teacher_cache import TeacherLogitCache


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from threads
    yield
    torch.set_num_threads(threads)


def tiny_bert(n_layer=4, seed=0):
    torch.manual_seed(seed)
    return Bert(BertConfig(vocab_size=len(VOCAB), block_size=32, n_layer=n_layer, n_head=2, n_embd=32, n_inner=64,
                           dropout=0.0, attn_dropout=0.0, init_std=0.3))


# ------------------------------------------------------------------------------------------- the loss

def test_kl_term_is_t_squared_times_torch_kl_div():
    student, teacher = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(0))
    T = 3.0
    reference = F.kl_div(F.log_softmax(student / T, -1), F.softmax(teacher / T, -1), reduction="batchmean")
    assert soft_cross_entropy_kl(student, teacher, T).item() == pytest.approx(T * T * reference.item(), rel=1e-6)


def test_kl_term_is_zero_when_the_student_copies_the_teacher():
    logits = torch.randn(4, 3)
    assert soft_cross_entropy_kl(logits, logits.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-7)


def test_t_squared_keeps_the_gradient_size_as_the_temperature_grows():
    teacher = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    base = torch.randn(64, 3, generator=torch.Generator().manual_seed(2))

    def gradient_norm(T):
        student = base.clone().requires_grad_(True)
        soft_cross_entropy_kl(student, teacher, T).backward()
        return student.grad.norm().item()

    # Without T² the gradient would shrink 4x from T=10 to T=20; with it, it stays (nearly) the same.
    assert gradient_norm(20.0) / gradient_norm(10.0) == pytest.approx(1.0, abs=0.05)


def test_cosine_loss_is_zero_for_equal_hidden_states_and_ignores_padding():
    h = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    other = h.clone()
    other[1, 2:] = torch.randn(3, 8)  # only padded positions differ
    assert hidden_cosine_loss([h], [other], mask).item() == pytest.approx(0.0, abs=1e-6)


def test_each_student_block_is_matched_with_the_last_teacher_block_it_replaces():
    assert matched_teacher_blocks([0, 2, 4], 6) == [1, 3, 5]
    assert matched_teacher_blocks([0, 1], 6) == [0, 5]


# --------------------------------------------------------------------------------------- the student

def test_student_blocks_start_as_copies_of_the_chosen_teacher_blocks():
    teacher = tiny_bert()
    student = student_backbone(teacher, [0, 2])
    assert student.config.n_layer == 2 and len(student.blocks) == 2
    for j, i in enumerate([0, 2]):
        ours, theirs = student.blocks[j].state_dict(), teacher.blocks[i].state_dict()
        assert all(torch.equal(ours[name], theirs[name]) for name in theirs)


def test_student_is_a_copy_that_leaves_the_teacher_untouched():
    teacher = tiny_bert()
    before = {name: t.clone() for name, t in teacher.state_dict().items()}
    student = student_backbone(teacher, [1, 3])
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    assert all(torch.equal(before[name], t) for name, t in teacher.state_dict().items())


def test_student_init_base_cuts_the_pretrained_blocks_not_the_teachers():
    teacher = Teacher(SequenceClassifier(tiny_bert(seed=1), 2, dropout=0.0, pooling="mean"), None, {}, None)
    pretrained = tiny_bert(seed=2)
    student = student_base(teacher, [0, 2], Base(pretrained, None, None)).backbone
    for j, i in enumerate([0, 2]):
        ours, theirs = student.blocks[j].state_dict(), pretrained.blocks[i].state_dict()
        assert all(torch.equal(ours[name], theirs[name]) for name in theirs)


@torch.no_grad()
def test_a_student_that_keeps_every_block_computes_what_the_teacher_does():
    teacher = tiny_bert().eval()
    student = student_backbone(teacher, [0, 1, 2, 3]).eval()
    ids = torch.randint(5, len(VOCAB), (2, 7))
    assert torch.equal(student(ids)[0], teacher(ids)[0])


@pytest.mark.parametrize("overrides, message", [
    (dict(temperature=0.0), "--temperature must be a positive number"),
    (dict(kd_weight=-1.0), "--kd_weight must be a number >= 0"),
    (dict(ce_weight=0.0, kd_weight=0.0), "nothing to learn from"),
    (dict(student_layers="2,1"), "increasing order"),
    (dict(student_layers="0,two"), "block numbers separated by commas"),
    (dict(transfer_batch=0), "--transfer_batch must be >= 1"),
])
def test_distill_config_refuses_what_cannot_work(overrides, message):
    with pytest.raises(ConfigError, match=message):
        DistillConfig(**overrides)


# ------------------------------------------------------------------------------------ the transfer set

def encoded(*ids_lists, label=None):
    return [{"input_ids": list(ids), "token_type_ids": [0] * len(ids), **({} if label is None else {"labels": label})}
            for ids in ids_lists]


def test_a_transfer_batch_carries_no_labels():
    batch = unlabelled_batch(encoded([2, 5, 3], [2, 3]), pad_id=0)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_a_transfer_sentence_equal_to_a_labelled_one_is_dropped_and_counted():
    examples = {"train": encoded([2, 7, 3], label=0), "val": encoded([2, 8, 3], label=1)}
    kept, dropped = drop_labelled_overlap(encoded([2, 8, 3], [2, 9, 3], [2, 7, 3]), examples)
    assert [item["input_ids"] for item in kept] == [[2, 9, 3]]
    assert dropped == {"val": 1, "train": 1}


def test_transfer_text_is_every_line_of_the_text_column_and_never_its_label(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('"1","a good film .\nthe plot is dull ."\n"-1","a good film ."\n', encoding="utf-8")
    assert read_transfer_texts(path, text_column="1") == ["a good film .", "the plot is dull ."]


def test_the_few_label_regime_keeps_the_same_labels_and_strips_the_rest():
    examples = encoded(*([2, 5 + i, 3] for i in range(10)), label=1)
    labelled, unlabelled = few_labels(examples, 3)
    assert len(labelled) == 3 and all("labels" in item for item in labelled)
    assert len(unlabelled) == 7 and not any("labels" in item for item in unlabelled)
    assert few_labels(examples, 3)[0] == labelled  # the same sample every run


def test_the_few_label_regime_refuses_to_keep_every_label():
    with pytest.raises(ConfigError, match="--labelled_examples 2: the training split has only 2 sentences"):
        few_labels(encoded([2, 5, 3], [2, 6, 3], label=0), 2)


def transfer_task(student, teacher_model, transfer, seed=0, **overrides):
    cfg = DistillConfig(teacher="t", student_layers="0,1", transfer_data="t.txt", transfer_batch=3, **overrides)
    task = ClassificationTask({"train": encoded([2, 7, 3], [2, 8, 9, 3], label=1), "val": encoded([2, 7, 3], label=1)},
                              pad_id=0, labels=["neg", "pos"])
    return DistillationTask(task, Teacher(teacher_model.eval(), None, {}, None), cfg, transfer, seed)


def test_transfer_sentences_enter_the_kl_term_and_not_the_cross_entropy():
    teacher = SequenceClassifier(tiny_bert(n_layer=2, seed=1), 2, dropout=0.0, pooling="mean")
    student = SequenceClassifier(tiny_bert(n_layer=2, seed=2), 2, dropout=0.0, pooling="mean").train()
    transfer = encoded([2, 10, 11, 3], [2, 12, 3], [2, 13, 14, 15, 3])
    task = transfer_task(student, teacher, transfer, seed=5)
    batch = task.get_batch("train", 2, torch.Generator().manual_seed(0))
    unlabelled = transfer_task(student, teacher, transfer, seed=5).transfer_batch()  # the same draw
    logits, ce = student(**batch)
    all_logits = torch.cat([logits, student(**unlabelled)[0]])
    with torch.no_grad():
        teacher_logits = torch.cat([teacher(**{k: v for k, v in batch.items() if k != "labels"})[0],
                                    teacher(**unlabelled)[0]])
    expected = ce + soft_cross_entropy_kl(all_logits, teacher_logits, 2.0)
    assert task.loss(student, batch).item() == pytest.approx(expected.item(), rel=1e-5)


# ---------------------------------------------------------------------------- the teacher's logits, once

def tiny_classifier(seed):
    return SequenceClassifier(tiny_bert(n_layer=2, seed=seed), 2, dropout=0.0, pooling="mean")


@torch.no_grad()
def test_cached_teacher_logits_equal_the_teachers_live_logits_on_a_padded_batch():
    teacher = tiny_classifier(seed=1).eval()
    sentences = encoded([2, 10, 11, 3], [2, 12, 3], [2, 13, 14, 15, 16, 3])
    cache = TeacherLogitCache(teacher, sentences, pad_id=0, batch_size=2)  # cached in other batches, other padding
    batch = unlabelled_batch([sentences[2], sentences[0], sentences[1], sentences[0]], pad_id=0)
    assert torch.allclose(cache.lookup(batch), teacher(**batch)[0], atol=1e-5)


@torch.no_grad()
def test_a_sentence_outside_the_cache_is_run_through_the_teacher_and_kept():
    teacher = tiny_classifier(seed=1).eval()
    cache = TeacherLogitCache(teacher, encoded([2, 10, 3]), pad_id=0)
    batch = unlabelled_batch(encoded([2, 10, 3], [2, 11, 12, 3]), pad_id=0)
    assert torch.allclose(cache.lookup(batch), teacher(**batch)[0], atol=1e-5)
    assert len(cache.logits) == 2


def test_the_cache_changes_no_loss_value():
    teacher, student = tiny_classifier(seed=1), tiny_classifier(seed=2).train()
    transfer = encoded([2, 10, 11, 3], [2, 12, 3], [2, 13, 14, 15, 3])
    batch = transfer_task(student, teacher, transfer).get_batch("train", 2, torch.Generator().manual_seed(0))
    cached = transfer_task(student, teacher, transfer, seed=5)
    live = transfer_task(student, teacher, transfer, seed=5, teacher_cache=False)  # the same transfer draw
    assert cached.cache is not None and live.cache is None
    assert cached.loss(student, batch).item() == pytest.approx(live.loss(student, batch).item(), rel=1e-5)


def test_the_cosine_term_runs_the_teacher_live():
    task = transfer_task(None, tiny_classifier(seed=1), encoded([2, 12, 3]), cos_weight=1.0)
    assert task.cache is None  # hidden states of every token are not cached


# ------------------------------------------------------------------------------ finetune.py --teacher

TRAIN_FLAGS = ["--max_iters", "40", "--batch_size", "16", "--warmup_iters", "4", "--eval_interval", "20",
               "--eval_iters", "1", "--device", "cpu", "--progress", "false", "--head_dropout", "0",
               "--pooling", "mean"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 4-block teacher fine-tuned on the tiny sentiment rows, and a 2-block student distilled from it."""
    folder = tmp_path_factory.mktemp("distill")
    base = save_base(folder / "base", tiny_bert(), tiny_wordpiece())
    rows = sentiment_rows(80)
    data = write_csv(folder / "train.csv", rows)
    teacher = finetune.main(["--task", "classify", "--base", str(base), "--data", str(data), "--lr", "3e-3",
                             "--out_dir", str(folder / "teacher"), *TRAIN_FLAGS])
    student = finetune.main(["--teacher", str(folder / "teacher"), "--student_layers", "0,2", "--data", str(data),
                             "--lr", "3e-3", "--out_dir", str(folder / "student"), "--cos_weight", "1",
                             *TRAIN_FLAGS])
    return folder, rows, teacher, student


def test_the_student_is_saved_whole_with_its_own_blocks(runs):
    folder, _, _, _ = runs
    config = json.loads((folder / "student" / "best" / "config.json").read_text())
    assert config["base"] is None and config["backbone"]["model"]["n_layer"] == 2
    assert config["distill"]["teacher"] == str((folder / "teacher" / "best").resolve())


def test_the_student_predicts_like_any_fine_tuned_model(runs):
    folder, rows, _, student = runs
    held_out = [text for text, _ in rows[-8:]]
    labels = [label for label, _ in finetune.predict(folder / "student", held_out)]
    assert student["best"] == 1.0  # the tiny task is learned, so each prediction can be checked
    assert labels == [label for _, label in rows[-8:]]


def test_a_teacher_whose_labels_differ_from_the_data_is_refused(runs, tmp_path, capsys):
    folder, rows, _, _ = runs
    other = write_csv(tmp_path / "other.csv", [(text, {"pos": "good", "neg": "bad"}[label]) for text, label in rows])
    status = run_command(finetune.main, ["--teacher", str(folder / "teacher"), "--student_layers", "0,2",
                                         "--data", str(other),
                                         "--out_dir", str(tmp_path / "run"), *TRAIN_FLAGS])
    err = capsys.readouterr().err
    assert status == 2
    assert "error: the teacher" in err and "labels ['neg', 'pos'], but the data has ['bad', 'good']" in err


def test_a_student_deeper_than_its_teacher_is_refused(runs, tmp_path, capsys):
    folder, _, _, _ = runs
    status = run_command(finetune.main, ["--teacher", str(folder / "teacher"), "--student_layers", "0,1,2,3,4",
                                         "--data", str(folder / "train.csv"), "--out_dir", str(tmp_path / "run"),
                                         *TRAIN_FLAGS])
    assert status == 2
    assert "deeper than its teacher (4 blocks)" in capsys.readouterr().err


def test_a_student_learns_from_a_transfer_file_minus_the_labelled_sentences(runs, tmp_path, capsys):
    folder, rows, _, _ = runs
    transfer = tmp_path / "unlabelled.txt"
    sentences = ["john lives in paris .", "the plot , the film .", *(text for text, _ in rows)]  # 72 train, 8 val
    transfer.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    flags = [*TRAIN_FLAGS, "--max_iters", "2", "--eval_interval", "2"]
    finetune.main(["--teacher", str(folder / "teacher"), "--student_layers", "0,2", "--data", str(folder / "train.csv"),
                   "--transfer_data", str(transfer), "--out_dir", str(tmp_path / "run"), *flags])
    out = capsys.readouterr().out
    assert "transfer: 2 unlabelled sentences (8 dropped as held-out sentences, 72 as labelled" in out


@pytest.mark.parametrize("content, message", [(None, "no such file"), ("\n\n", "holds no sentences")])
def test_a_missing_or_empty_transfer_file_is_refused(runs, tmp_path, capsys, content, message):
    folder, _, _, _ = runs
    transfer = tmp_path / "unlabelled.txt"
    if content is not None:
        transfer.write_text(content, encoding="utf-8")
    status = run_command(finetune.main, ["--teacher", str(folder / "teacher"), "--student_layers", "0,2",
                                         "--data", str(folder / "train.csv"), "--transfer_data", str(transfer),
                                         "--out_dir", str(tmp_path / "run"), *TRAIN_FLAGS])
    assert status == 2
    err = capsys.readouterr().err
    assert f"error: --transfer_data {transfer}" in err and message in err
