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
from minilm.finetune.distill import (DistillConfig, hidden_cosine_loss, matched_teacher_blocks, soft_cross_entropy_kl,
                                     student_backbone)


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
])
def test_distill_config_refuses_what_cannot_work(overrides, message):
    with pytest.raises(ConfigError, match=message):
        DistillConfig(**overrides)


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
