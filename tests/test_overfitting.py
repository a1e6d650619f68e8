"""The over-fitting remedies: adversarial training (FGM, PGD), EDA augmentation with embedding synonyms,
and ensembles of checkpoints, each as finetune.py options."""

import json
import random
import shutil

import pytest
import torch

import finetune
from common.errors import run_command
from data.augment import AugmentConfig, EmbeddingNeighbours, augment_examples, delete, swap
from data.finetune_data import TaggedSentence, TextExample
from finetune_fixtures import VOCAB, save_bert_base, sentiment_rows, tiny_bert, tiny_wordpiece, write_csv
from minilm.finetune.adversarial import AdversarialConfig, AdversarialTask, per_sequence_unit, project
from minilm.finetune.ensemble import Ensemble
from minilm.finetune.heads import HEAD_NAMES, SequenceClassifier
from minilm.finetune.tasks import ClassificationTask, pad_batch
from minilm.peft import PeftConfig, apply_peft
from test_finetune_training import encoded_sentiment


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def classifier_and_batch(method="full"):
    torch.manual_seed(0)
    model = SequenceClassifier(tiny_bert(), num_labels=2, dropout=0.0)
    apply_peft(model, PeftConfig(method=method, lora_r=4), HEAD_NAMES)
    examples, label_map = encoded_sentiment(16, 4)
    task = ClassificationTask(examples, 0, label_map.labels)
    return model.train(), task, pad_batch(examples["train"][:8], 0)


# ----------------------------------------------------------------------------------- adversarial

def test_each_sequence_perturbation_has_length_epsilon_and_projection_caps_it():
    g = torch.randn(3, 5, 4)
    assert torch.allclose(per_sequence_unit(g).flatten(1).norm(dim=1), torch.ones(3))
    r = project(torch.randn(3, 5, 4) * 10, epsilon=0.5)
    assert torch.allclose(r.flatten(1).norm(dim=1), torch.full((3,), 0.5))
    small = torch.full((1, 2, 2), 0.01)
    assert torch.equal(project(small, epsilon=0.5), small)  # inside the ball: unchanged


@pytest.mark.parametrize("method", ["full", "lora", "freeze"])
def test_the_fgm_loss_is_the_mean_of_clean_and_a_higher_adversarial_loss(method):
    model, task, batch = classifier_and_batch(method)
    clean = task.loss(model, batch)
    adversarial = AdversarialTask(task, model, AdversarialConfig("fgm", adv_epsilon=0.5)).loss(model, batch)
    assert adversarial > clean  # ½ (clean + L(e + r)) with L(e + r) > clean: r points up the loss
    adversarial.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_epsilon_zero_gives_the_clean_loss_and_evaluation_is_never_perturbed():
    model, task, batch = classifier_and_batch()
    clean = task.loss(model, batch).item()
    assert AdversarialTask(task, model, AdversarialConfig("fgm", adv_epsilon=0.0)).loss(model, batch).item() == pytest.approx(clean)
    pgd = AdversarialTask(task, model, AdversarialConfig("pgd", adv_epsilon=1.0, adv_steps=2))
    assert pgd.loss(model.eval(), batch).item() == pytest.approx(task.loss(model, batch).item())


def test_the_perturbation_is_gone_after_the_adversarial_loss():
    model, task, batch = classifier_and_batch()
    before, _ = model.eval()(**batch)
    AdversarialTask(task, model, AdversarialConfig("pgd", adv_epsilon=1.0, adv_steps=3)).loss(model.train(), batch)
    after, _ = model.eval()(**batch)
    assert torch.equal(before, after)


def test_pgd_searches_at_least_as_far_up_the_loss_as_one_small_step():
    model, task, batch = classifier_and_batch()
    one = AdversarialTask(task, model, AdversarialConfig("pgd", adv_epsilon=1.0, adv_steps=1, adv_alpha=0.2))
    five = AdversarialTask(task, model, AdversarialConfig("pgd", adv_epsilon=1.0, adv_steps=5, adv_alpha=0.2))
    assert five.loss(model, batch) > one.loss(model, batch)


# ---------------------------------------------------------------------------------- augmentation

def neighbours_where_good_is_near_great():
    weight = torch.randn(len(VOCAB), 8, generator=torch.Generator().manual_seed(0))
    weight[VOCAB.index("great")] = weight[VOCAB.index("good")] + 0.01  # nearly the same row
    return EmbeddingNeighbours(VOCAB, weight, k=1)


def test_a_synonym_is_the_nearest_row_of_the_embedding_table():
    neighbours = neighbours_where_good_is_near_great()
    assert neighbours("good") == ["great"] and neighbours("Good") == ["great"]
    assert neighbours("the") == [] and neighbours("zebra") == []  # a stop word; not a piece of the vocabulary
    cfg = AugmentConfig(augment_copies=1, augment_p=1.0, augment_ops="synonym")
    [_, copy] = augment_examples([TextExample("a good film", "pos")], cfg, seed=0, neighbours=neighbours)
    assert copy.text.split()[1] == "great" and copy.label == "pos"


def test_augmentation_never_touches_an_entity_of_a_tagged_sentence():
    neighbours = neighbours_where_good_is_near_great()
    words = "john lives in paris , very good".split()
    tags = "B-person O O B-geo-loc I-geo-loc O O".split()
    cfg = AugmentConfig(augment_copies=50, augment_p=0.5)
    copies = augment_examples([TaggedSentence(words, tags)], cfg, seed=1, neighbours=neighbours)[1:]
    for copy in copies:
        pairs = list(zip(copy.words, copy.tags))
        assert len(copy.words) == len(copy.tags)
        assert ("john", "B-person") in pairs and pairs[pairs.index(("paris", "B-geo-loc")) + 1] == (",", "I-geo-loc")


def test_delete_keeps_a_word_and_swap_keeps_the_words():
    rng = random.Random(0)
    pairs = [(w, None) for w in "a b c d e".split()]
    assert len(delete(pairs, 1.0, rng)) == 1
    assert sorted(swap(list(pairs), 3, rng, None)) == pairs


def test_the_same_seed_gives_the_same_copies():
    cfg = AugmentConfig(augment_copies=3, augment_ops="swap,delete", augment_p=0.3)
    examples = [TextExample("the film was very good indeed", "pos")]
    assert augment_examples(examples, cfg, 7) == augment_examples(examples, cfg, 7)


# ------------------------------------------------------------------------------ through finetune.py

def train_tiny(folder, seed, extra=(), rows=None):
    rows = rows or sentiment_rows(48)
    data = write_csv(folder / f"train{seed}.csv", rows)
    return finetune.main([
        "--task", "classify", "--base", str(folder / "base"), "--data", str(data), "--method", "lora",
        "--lora_r", "4", "--lr", "1e-2", "--max_iters", "12", "--batch_size", "8", "--warmup_iters", "2",
        "--eval_interval", "12", "--eval_iters", "1", "--out_dir", str(folder / f"run{seed}"), "--device", "cpu",
        "--progress", "false", "--seed", str(seed), *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two LoRA runs of different seeds, the second with FGM and augmentation on."""
    folder = tmp_path_factory.mktemp("remedies")
    save_bert_base(folder / "base")
    train_tiny(folder, 1)
    train_tiny(folder, 2, ["--adversarial", "fgm", "--adv_epsilon", "0.5", "--augment_copies", "1",
                           "--augment_ops", "swap,delete"])
    return folder


def test_remedies_train_and_are_recorded_in_the_checkpoint(runs):
    config = json.loads((runs / "run2" / "best" / "config.json").read_text())
    assert config["remedies"]["adversarial"] == "fgm" and config["remedies"]["augment_copies"] == 1


def test_an_ensemble_averages_its_members_probabilities(runs):
    members = [finetune.load_checkpoints(runs / f"run{seed}")[0][0] for seed in (1, 2)]
    batch = pad_batch([{"input_ids": [2, 7, 20, 3], "token_type_ids": [0] * 4, "labels": 0}], 0)
    log_p, _ = Ensemble(members)(**batch)
    mean = (members[0](**batch)[0].softmax(-1) + members[1](**batch)[0].softmax(-1)) / 2
    assert torch.allclose(log_p.exp(), mean, atol=1e-6)


def test_evaluate_reports_each_member_and_the_ensemble(runs, capsys):
    results = finetune.main(["evaluate", "--ckpt", str(runs / "run1"), "--ckpt", str(runs / "run2")])
    assert set(results) == {str(runs / "run1"), str(runs / "run2"), "ensemble"}
    assert all(0.0 <= r["val_acc"] <= 1.0 for r in results.values())


def test_predict_with_two_checkpoints_answers_with_the_ensemble(runs, capsys):
    [(label, probability)] = finetune.main(["predict", "--ckpt", str(runs / "run1"), "--ckpt", str(runs / "run2"),
                                            "the film was good"])
    assert label in ("neg", "pos") and 0.5 <= probability <= 1.0


def copy_with(runs, tmp_path, name, change):
    shutil.copytree(runs / "run1" / "best", tmp_path / name)
    change(tmp_path / name)
    return str(tmp_path / name)


def relabel(folder):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "labels": ["bad", "good"]}))


def uncased_off(folder):
    config = json.loads((folder / "tokenizer" / "tokenizer.json").read_text())
    (folder / "tokenizer" / "tokenizer.json").write_text(json.dumps({**config, "lowercase": False}))


@pytest.mark.parametrize("change, message", [(relabel, "has labels ['bad', 'good']"),
                                             (uncased_off, "has another tokenizer")])
def test_an_ensemble_of_checkpoints_that_disagree_is_refused(runs, tmp_path, capsys, change, message):
    other = copy_with(runs, tmp_path, "other", change)
    status = run_command(finetune.main, ["predict", "--ckpt", str(runs / "run1"), "--ckpt", other, "good"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: --ckpt ") and message in err


@pytest.mark.parametrize("flags, message", [
    (["--augment_copies", "1", "--augment_p", "1.5"], "--augment_p must be in [0, 1]"),
    (["--adversarial", "fgm", "--adv_epsilon", "-0.1"], "--adv_epsilon must be >= 0"),
    (["--augment_ops", "swap,shuffle"], "--augment_ops 'swap,shuffle'"),
])
def test_bad_remedy_flags_are_errors_naming_the_flag(runs, tmp_path, capsys, flags, message):
    status = run_command(finetune.main, ["--task", "classify", "--base", str(runs / "base"), "--data",
                                         str(runs / "train1.csv"), "--out_dir", str(tmp_path / "x"), *flags])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and message in err
