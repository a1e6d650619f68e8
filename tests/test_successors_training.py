"""Pretraining RoBERTa, ALBERT and ELECTRA with train_bert.py, and fine-tuning them with finetune.py:
exact resume, bfloat16, the metrics beside their baselines, checkpoints, --init_from, and bad input."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file

import finetune
import train_bert
from common.errors import CheckpointError, ConfigError, run_command
from data.bert_corpus import DataConfig, init_folder, make_sampler
from data.bert_pairs import tokenize_documents
from finetune_fixtures import sentiment_rows, write_csv
from minilm.finetune.checkpoints import load_base, load_finetuned
from minilm.model import Bert, BertConfig, BertForPreTraining
from minilm.training.checkpoint import MODEL_CLASSES, load_checkpoint
from minilm.training.electra_task import auc
from minilm.training.objectives import OBJECTIVES, make_task
from minilm.training.presets import BERT_PRESETS
from minilm.training.trainer import Trainer, TrainConfig
from test_bert_pretraining import PositionTokenizer, make_documents

pytestmark = pytest.mark.usefixtures("one_thread")
SUCCESSORS = ["roberta-small", "albert-small", "electra-small"]
# Each preset's model, 32 wide; ALBERT's E and ELECTRA's generator shrunk alike.
TINY_MODEL = dict(n_layer=2, n_head=2, n_embd=32, n_inner=64, block_size=33, dropout=0.1, attn_dropout=0.1)
TINY_IDEAS = {"albert-small": dict(embedding_size=16), "electra-small": dict(generator_n_embd=8, generator_n_inner=16)}


# ---- the Trainer on each preset's objective ------------------------------------------------------------

def tiny_run_parts(preset: str, model: dict | None = None, **data):
    """(model config, task) of a tiny version of the preset, on generated documents; model: config fields to
    change, data: DataConfig fields."""
    documents = make_documents(n_docs=4, n_lines=20)
    tokenizer = PositionTokenizer(documents)
    docs = tokenize_documents(documents, tokenizer)
    data_cfg = DataConfig(**BERT_PRESETS[preset]["data"] | {"max_seq_len": 32} | data)
    sampler = make_sampler(data_cfg, docs, 32, tokenizer, "train")
    objective = OBJECTIVES[data_cfg.objective]
    config_cls = MODEL_CLASSES[objective.model_class][1]
    config = config_cls(**{**BERT_PRESETS[preset]["model"], **TINY_MODEL, **TINY_IDEAS.get(preset, {}),
                           "vocab_size": tokenizer.vocab_size, **(model or {})})
    task = make_task(data_cfg.objective, {"train": sampler, "val": sampler}, tokenizer, data_cfg, 4,
                     getattr(config, "rtd_weight", 0.0))
    return config, task


def train(preset: str, out_dir, max_iters: int, resume: bool = False, dtype: str = "float32",
          model: dict | None = None, **data):
    """Train the tiny preset model to max_iters (the schedule is set for 6 steps): (losses, last metrics)."""
    config, task = tiny_run_parts(preset, model, **data)
    torch.manual_seed(0)
    model = MODEL_CLASSES[OBJECTIVES[task_objective(preset)].model_class][0](config)
    cfg = TrainConfig(out_dir=str(out_dir), max_iters=max_iters, lr_decay_iters=6, batch_size=4, eval_interval=3,
                      eval_iters=1, log_interval=1, warmup_iters=1, progress=False, resume=resume, device="cpu",
                      dtype=dtype)
    metrics = Trainer(model, task, cfg, {"model": config.to_dict()}).run()
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row], metrics


def task_objective(preset: str) -> str:
    return BERT_PRESETS[preset]["data"]["objective"]


@pytest.mark.parametrize("preset", SUCCESSORS)
def test_half_a_run_then_resume_gives_the_losses_and_weights_of_the_whole_run(tmp_path, preset):
    whole, _ = train(preset, tmp_path / "whole", 6)
    first_half, _ = train(preset, tmp_path / "halves", 3)
    resumed, _ = train(preset, tmp_path / "halves", 6, resume=True)
    assert len(whole) == 6 and first_half == whole[:3] and resumed == whole  # metrics.jsonl holds every step
    expected = load_file(tmp_path / "whole" / "ckpt" / "model.safetensors")
    got = load_file(tmp_path / "halves" / "ckpt" / "model.safetensors")
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


def test_an_electra_run_with_a_curriculum_resumes_exactly(tmp_path):
    whole, _ = train("electra-small", tmp_path / "whole", 6, rtd_curriculum_iters=4)
    train("electra-small", tmp_path / "halves", 3, rtd_curriculum_iters=4)
    resumed, _ = train("electra-small", tmp_path / "halves", 6, resume=True, rtd_curriculum_iters=4)
    without, _ = train("electra-small", tmp_path / "without", 6)
    assert resumed == whole and whole != without  # the curriculum changed the run, and resumed it exactly


def test_an_electra_with_a_tied_generator_saves_its_shared_bert_once_and_resumes_exactly(tmp_path):
    tied = {"tie_generator": True}
    whole, _ = train("electra-small", tmp_path / "whole", 6, model=tied)
    train("electra-small", tmp_path / "halves", 3, model=tied)
    resumed, _ = train("electra-small", tmp_path / "halves", 6, resume=True, model=tied)
    saved = load_file(tmp_path / "whole" / "ckpt" / "model.safetensors")
    assert resumed == whole
    assert not any(name.startswith("generator.bert.") for name in saved)  # the discriminator's, saved once


@pytest.mark.parametrize("preset", SUCCESSORS)
def test_a_bfloat16_run_gives_finite_losses_and_metrics(tmp_path, preset):
    losses, metrics = train(preset, tmp_path / "bf16", 3, dtype="bfloat16")
    assert all(torch.isfinite(torch.tensor([*losses, *metrics.values()])))


def test_an_electra_evaluation_leaves_the_training_random_stream_as_it_was():
    config, task = tiny_run_parts("electra-small")
    model = MODEL_CLASSES["Electra"][0](config).eval()
    torch.manual_seed(1)
    before = torch.get_rng_state()
    with torch.no_grad():
        task.evaluate(model, TrainConfig(batch_size=4, eval_iters=1), "cpu")
    assert torch.equal(torch.get_rng_state(), before)


def test_the_rtd_baseline_is_the_share_of_real_tokens_left_original():
    config, task = tiny_run_parts("electra-small")
    model = MODEL_CLASSES["Electra"][0](config).eval()
    batch = task.fixed_batches("val", TrainConfig(batch_size=4, eval_iters=1))[0]
    torch.manual_seed(0)  # as ElectraTask.evaluate seeds its corruption
    with torch.no_grad():
        out = model(**batch)
        metrics = task.evaluate(model, TrainConfig(batch_size=4, eval_iters=1), "cpu")
    real = batch["attention_mask"].bool()
    assert metrics["val_rtd_original"] == pytest.approx((out.rtd_labels[real] == 0).float().mean().item())
    assert task.baselines(TrainConfig(batch_size=4, eval_iters=1), 5, "x", metrics)["rtd_acc"].value == \
        metrics["val_rtd_original"]


def test_the_curriculums_uniform_share_falls_linearly_from_one_to_zero():
    _, task = tiny_run_parts("electra-small", rtd_curriculum_iters=4)
    shares = []
    for step in (0, 1, 2, 4, 10):
        task.on_step_start(step)
        shares.append(task.uniform_share())
    assert shares == [1.0, 0.75, 0.5, 0.0, 0.0]


def test_without_a_curriculum_the_uniform_share_is_zero_from_the_first_step():
    _, task = tiny_run_parts("electra-small")
    task.on_step_start(0)
    assert task.uniform_share() == 0.0


def test_rtd_auc_is_one_when_every_replaced_token_scores_above_every_original():
    assert auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1])) == 1.0
    assert auc(torch.tensor([0.8, 0.9, 0.1, 0.2]), torch.tensor([0, 0, 1, 1])) == 0.0


def test_rtd_auc_counts_the_pairs_a_replaced_token_wins():
    # replaced 0.35 beats 0.1 only, replaced 0.8 beats both originals: 3 of the 4 pairs
    assert auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == 0.75


def test_a_curriculum_for_an_objective_without_replacements_is_refused():
    with pytest.raises(ConfigError, match="rtd_curriculum_iters"):
        DataConfig(objective="mlm", rtd_curriculum_iters=100)


def test_the_albert_task_reports_sentence_order_accuracy_beside_about_even_chance():
    _, task = tiny_run_parts("albert-small")
    cfg = TrainConfig(batch_size=64, eval_iters=4)
    chance = task.baselines(cfg, 5, "x", {})["sop_acc"]
    assert 0.5 <= chance.value < 0.6 and chance.means == "always the more common label"


# ---- train_bert.py and finetune.py on each preset --------------------------------------------------------

TINY_FLAGS = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--n_inner", "32", "--block_size", "33",
              "--max_seq_len", "32", "--tokenizer_vocab_size", "60", "--batch_size", "4", "--max_iters", "2",
              "--eval_interval", "2", "--eval_iters", "1", "--log_interval", "1", "--device", "cpu",
              "--progress", "false"]
TINY_PRESET_FLAGS = {"albert-small": ["--embedding_size", "8"],
                     "electra-small": ["--generator_n_embd", "8", "--generator_n_inner", "16"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny train_bert.py run of each successor preset on generated documents: {preset: out_dir}, and the text."""
    root = tmp_path_factory.mktemp("successors")
    old_cache = os.environ.get("MINILM_CACHE")
    os.environ["MINILM_CACHE"] = str(root / "cache")
    text = root / "docs.txt"
    text.write_text("\n\n".join(make_documents(n_docs=6, n_lines=30)) + "\n")
    out = {}
    for preset in SUCCESSORS:
        out[preset] = root / preset
        train_bert.main(["--config", preset, "--data", str(text), "--out_dir", str(out[preset]), *TINY_FLAGS,
                         *TINY_PRESET_FLAGS.get(preset, [])])
    yield out, text
    if old_cache is None:
        os.environ.pop("MINILM_CACHE")
    else:
        os.environ["MINILM_CACHE"] = old_cache


@pytest.mark.slow
@pytest.mark.parametrize("preset, model_class", [("roberta-small", "BertForMaskedLM"), ("albert-small",
                                                 "BertForPreTraining"), ("electra-small", "Electra")])
def test_each_preset_saves_its_own_model_class_and_an_accuracy_plot(runs, preset, model_class):
    out, _ = runs
    _, config, _ = load_checkpoint(out[preset] / "ckpt", with_train_state=False)
    assert config["model_class"] == model_class and (out[preset] / "accuracy.png").is_file()


@pytest.mark.slow
def test_the_electra_backbone_is_the_discriminators_bert_with_a_plain_bert_config(runs):
    out, _ = runs
    base = load_base(out["electra-small"] / "best")
    saved, _, _ = load_checkpoint(out["electra-small"] / "best", with_train_state=False)
    assert type(base.backbone) is Bert and type(base.backbone.config) is BertConfig
    for name, tensor in base.backbone.state_dict().items():
        assert torch.equal(tensor, saved[f"discriminator.bert.{name}"]), name


@pytest.mark.slow
@pytest.mark.parametrize("preset", SUCCESSORS)
def test_finetune_starts_a_classifier_from_each_pretrained_backbone(runs, preset, tmp_path):
    out, _ = runs
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(24))
    finetune.main(["--task", "classify", "--base", str(out[preset]), "--data", str(data), "--method", "full",
                   "--lr", "1e-9", "--max_iters", "1", "--batch_size", "8", "--warmup_iters", "0", "--eval_interval",
                   "1", "--eval_iters", "1", "--out_dir", str(tmp_path / "ft"), "--device", "cpu", "--progress",
                   "false", "--max_length", "32", "--val_fraction", "0.25"])
    classifier, _, _ = load_finetuned(tmp_path / "ft")
    pretrained = load_base(out[preset] / "best").backbone.state_dict()
    for name, tensor in classifier.backbone.state_dict().items():  # one step at lr 1e-9 barely moves them
        torch.testing.assert_close(tensor, pretrained[name], rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("preset", SUCCESSORS)
def test_init_from_a_checkpoint_of_the_same_preset_starts_from_its_weights(runs, preset, tmp_path):
    out, text = runs
    train_bert.main(["--config", preset, "--data", str(text), "--out_dir", str(tmp_path / "next"), *TINY_FLAGS,
                     *TINY_PRESET_FLAGS.get(preset, []), "--max_iters", "1", "--eval_interval", "1",
                     "--init_from", str(out[preset]), "--lr", "1e-9"])
    first, _, _ = load_checkpoint(out[preset] / "best", with_train_state=False)
    second, _, _ = load_checkpoint(tmp_path / "next" / "ckpt", with_train_state=False)
    name = next(n for n in first if n.endswith("embeddings.word.weight"))
    torch.testing.assert_close(second[name], first[name], rtol=0, atol=1e-6)


# ---- bad input: `error: ...`, exit 2 ---------------------------------------------------------------------

@pytest.mark.slow
def test_a_roberta_checkpoint_given_to_a_bert_run_names_both_and_the_fix(runs, tmp_path, capsys):
    out, text = runs
    code = run_command(train_bert.main, ["--config", "small", "--data", str(text), "--out_dir", str(tmp_path / "x"),
                                         *TINY_FLAGS, "--init_from", str(out["roberta-small"])])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint of BertForMaskedLM (--objective mlm, RoBERTa)" in err and "--objective" in err


@pytest.mark.slow
def test_resuming_a_run_under_another_presets_objective_is_refused(runs):
    out, _ = runs
    with pytest.raises(ConfigError, match=r"--config electra-small trains --objective electra.*--objective mlm\b"):
        train_bert.main(["--config", "electra-small", "--out_dir", str(out["roberta-small"]), "--resume"])


@pytest.mark.parametrize("preset", ["small", *SUCCESSORS])
def test_a_tokenizer_without_a_mask_token_is_refused_for_every_objective(preset, capsys):
    assert run_command(train_bert.main, ["--config", preset, "--tokenizer", "gpt2"]) == 2
    assert "--tokenizer gpt2 has no [MASK] token" in capsys.readouterr().err


def test_an_albert_embedding_size_above_the_width_is_refused_naming_both(capsys):
    assert run_command(train_bert.main, ["--config", "albert-small", "--embedding_size", "256"]) == 2
    assert "embedding_size (256) is above n_embd (128)" in capsys.readouterr().err


def test_an_electra_generator_wider_than_the_discriminator_is_refused_naming_both(capsys):
    assert run_command(train_bert.main, ["--config", "electra-small", "--generator_n_embd", "256"]) == 2
    assert "generator_n_embd (256) is wider than the discriminator's n_embd (128)" in capsys.readouterr().err


def test_help_of_the_electra_preset_shows_the_objective_and_the_generator_flags(capsys):
    with pytest.raises(SystemExit):
        train_bert.main(["--config", "electra-small", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the help to the terminal's width
    assert "--generator_n_embd" in shown and "(default electra)" in shown


def test_a_checkpoint_from_another_class_is_refused_by_init_from(tmp_path):
    folder = tmp_path / "electra"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_class": "Electra", "model": {}}))
    with pytest.raises(CheckpointError, match=r"is a train_bert.py checkpoint of Electra \(--objective electra, "
                                              r"ELECTRA\); --objective mlm continues a BertForMaskedLM"):
        init_folder(str(folder), "mlm")


def test_the_albert_run_prints_the_parameters_of_a_bert_of_its_shape():
    albert = BertConfig(**BERT_PRESETS["albert-small"]["model"])
    bert = BertConfig(**{**BERT_PRESETS["albert-small"]["model"], "embedding_size": None, "share_layers": False})
    assert train_bert.bert_parameters_of_shape(albert) == BertForPreTraining(bert).num_parameters()
    assert BertForPreTraining(albert).num_parameters() < 0.6 * train_bert.bert_parameters_of_shape(albert)
