"""Fine-tune a pretrained GPT or BERT: continue language modelling, classify texts, or tag words; or teach a
chat model (SmolLM2, any Llama-family decoder with a chat template) to answer (instruction tuning).

    python finetune.py --recipe sentiment-minilm                  # MiniLM BERT, movie-review polarity
    python finetune.py --recipe sentiment-minilm --method lora    # ... training 0.65% of the numbers
    python finetune.py --recipe pos-minilm                        # part-of-speech tagging
    python finetune.py --recipe shakespeare-lm                    # continue out/gpt-small on the plays
    python finetune.py --recipe sentiment-distill                 # a 3-block student of out/sentiment-minilm
    python finetune.py --task classify --base minilm-l6 --data reviews.csv --method adapter
    python finetune.py --recipe ner-minilm                        # named entities in tweets
    python finetune.py --recipe intent-minilm                     # the category of a customer's question
    python finetune.py --recipe assistant-smollm2 --merge         # SmolLM2 learns the chatterbot answers (LoRA)
    python finetune.py --task chat --base smollm2 --data chats.jsonl --method full    # your conversations
    python finetune.py --recipe sentiment-minilm --adversarial fgm --augment_copies 2    # over-fitting remedies
    python finetune.py predict --ckpt out/sentiment-minilm "a gorgeous, moving film"
    python finetune.py predict --ckpt out/a --ckpt out/b "a gorgeous, moving film"      # an ensemble
    python finetune.py evaluate --ckpt out/a --ckpt out/b         # each checkpoint and the ensemble, held out
    python finetune.py --help                                     # every flag, with its default

Reading path: this file turns the data into a Task (data/finetune_tasks.py: data/finetune_data.py reads,
minilm/finetune/encode.py and sft.py encode; the settings are minilm/finetune/config.py), loads the base
(minilm/finetune/checkpoints.py), puts a head on it (minilm/finetune/heads.py), applies the method (minilm/peft/)
and trains with the shared Trainer on a Task (minilm/finetune/tasks.py). --task chat reads the
base with minilm/chat/load.py (minilm/finetune/chat_base.py: its template and pointer) and trains the
answers of conversations (minilm/finetune/sft.py).
docs/finetuning.md explains the choices and gives the results; docs/applications.md the applications
(entities, the assistant's intents) and the remedies for over-fitting.
"""

import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from common.errors import ConfigError, run_command
from data.assets import ASSETS, BASE_MODELS, GGUF_MODELS, base_model_folder, fetch, model_path
from data.augment import AugmentConfig, make_augmenter
from data.finetune_data import LabelMap
from data.finetune_tasks import build_chat_task, build_labelled_task, build_lm_task, encode_labelled, read_examples
from data.ner_data import looks_like_bio, memorised_baseline
from data.prepare import fingerprint_tokenizer
from data.tokenizers import named_tokenizer
from data.transfer_text import encode_transfer_set
from minilm.chat.load import end_ids, load_decoder
from minilm.finetune.adversarial import AdversarialConfig, adversarial_task, word_embedding
from minilm.finetune.chat_base import base_pointer, chat_hint, with_chat_template
from minilm.finetune.checkpoints import (HEADLESS_TASKS, Base, FinetuneTrainer, backbone_record, base_folder, load_base,
                                         load_finetuned, load_trained_weights)
from minilm.finetune.config import FinetuneConfig
from minilm.finetune.distill import DistillConfig, distillation_task, open_teacher, student_base, teacher_folder
from minilm.finetune.encode import encode_text, encode_words
from minilm.finetune.ensemble import ensemble_of
from minilm.finetune.entity_report import entity_spans, format_entity_table
from minilm.finetune.heads import HEAD_NAMES, SequenceClassifier, TokenTagger, backbone_family, set_attention
from minilm.finetune.recipes import RECIPES, derived_defaults
from minilm.finetune.sft import greedy_answer
from minilm.finetune.tagging_metrics import entity_scores, is_bio_tagset
from minilm.gguf import is_gguf
from minilm.hf import read_config
from minilm.peft import PeftConfig, apply_peft, merge_lora, parameter_report, precompute_prefix
from minilm.training.checkpoint import load_checkpoint, save_checkpoint
from minilm.training.cli import parse_args
from minilm.training.lm_task import perplexity
from minilm.training.run_dir import check_out_dir
from minilm.training.trainer import TrainConfig, seed_everything

# ------------------------------------------------------------------------------------------ training

def base_folder_of(spec: str, task: str) -> Path:
    """The folder of the base model --base names: an alias (minilm-l6, fetched), a run's out_dir or a model folder.
    A Llama (smollm2, a .gguf file, a Llama checkpoint or folder) is refused: the heads and the checkpoints of
    fine-tuning (minilm/finetune/) are built for GPT-2 and BERT bases."""
    if spec in GGUF_MODELS or is_gguf(spec):  # llama.cpp's files hold Llama-family models
        raise ConfigError(llama_base_problem(spec, task))
    folder = base_model_folder(spec) if spec in BASE_MODELS else base_folder(spec)
    config = read_config(folder)
    if config.get("model_class") == "Llama" or config.get("model_type") == "llama":
        raise ConfigError(llama_base_problem(spec, task))
    return folder


def llama_base_problem(spec: str, task: str) -> str:
    return (f"--base {spec} is a Llama, and finetune.py --task {task} takes a GPT-2 or BERT base only (a Llama "
            "fine-tunes with --task chat: instruction tuning); pass minilm-l6, a train_gpt.py --config small run or "
            f"a train_bert.py run. To generate with it: python sample.py --ckpt {spec}")


def chat_base_path(spec: str) -> Path:
    """The decoder --base names for --task chat: the alias smollm2 (fetched on first use), a .gguf file, or a
    folder (a Hugging Face Llama folder with tokenizer/, a train_gpt.py checkpoint or run, a merged chat fine-tune)."""
    path = model_path(spec)
    if path.is_dir() and not (path / "config.json").exists():  # a run's out_dir: its whole model
        path = next((path / name for name in ("merged", "best") if (path / name / "config.json").exists()), path)
    if not path.exists():
        raise ConfigError(f"--base {spec}: no such file or folder, and not a model alias ({', '.join(GGUF_MODELS)}); "
                          "--task chat takes a chat model: smollm2, a .gguf file, a Hugging Face Llama folder with "
                          "tokenizer/, or a train_gpt.py checkpoint with --chat_template chatml")
    return path


def open_chat_base(cfg: FinetuneConfig, path: Path) -> tuple[Base, tuple[int, ...]]:
    """The decoder at path with its chat template (or the one --chat_template names), and the ids that end an
    answer (scored: the model must learn to stop)."""
    decoder = load_decoder(path)
    tokenizer = with_chat_template(decoder.tokenizer, cfg.chat_template, cfg.base)
    answer_end_ids = end_ids(tokenizer)
    if not answer_end_ids:
        raise ConfigError(f"--base {cfg.base}: its tokenizer has no end-of-turn token, so the model could not "
                          "learn where an answer stops; use a chat model's tokenizer")
    pointer = base_pointer(cfg.base, path, alias=cfg.base in GGUF_MODELS)
    return Base(decoder.model, tokenizer, pointer), answer_end_ids


def refuse_for_chat(configs: dict) -> None:
    """The options of the other tasks that instruction tuning does not have."""
    if configs["distill"].teacher is not None:
        raise ConfigError("--teacher distils classifiers and taggers; --task chat takes no teacher")
    if configs["augment"].augment_copies or configs["adversarial"].adversarial != "none":
        raise ConfigError("--augment_copies and --adversarial are for --task classify and tag, not --task chat")



def open_base(spec: str, folder: Path):
    return load_base(folder, alias=spec if spec in BASE_MODELS else None,
                     gpt2_tokenizer=lambda: named_tokenizer("gpt2"))


def transfer_set(cfg: DistillConfig, data_cfg: FinetuneConfig, tokenizer, family: str) -> list[dict]:
    """The --transfer_data sentences (a file, or an asset fetched on first use), encoded as --data is."""
    path = str(fetch(cfg.transfer_data)) if cfg.transfer_data in ASSETS else cfg.transfer_data
    return encode_transfer_set(path, data_cfg.text_column, cfg.transfer_examples, tokenizer, family,
                               data_cfg.max_length)


def build_model(cfg: FinetuneConfig, backbone, num_labels: int | None):
    if cfg.task == "classify":
        return SequenceClassifier(backbone, num_labels, cfg.head_dropout, cfg.pooling)
    return backbone if cfg.task in HEADLESS_TASKS else TokenTagger(backbone, num_labels, cfg.head_dropout)


def train(argv=None):
    configs = parse_args(RECIPES, {"data": FinetuneConfig, "train": TrainConfig, "peft": PeftConfig,
                                   "distill": DistillConfig, "adversarial": AdversarialConfig,
                                   "augment": AugmentConfig}, argv,
                         description=__doc__.split("\n")[0], preset_flag="recipe",
                         derived_defaults=derived_defaults, prog="finetune.py")
    given = configs["given"]
    data_cfg, train_cfg, peft_cfg, distill_cfg = configs["data"], configs["train"], configs["peft"], configs["distill"]
    print(f"task {data_cfg.task}, method {peft_cfg.method}, lr {train_cfg.lr:g}, "
          + (f"teacher {distill_cfg.teacher}" if distill_cfg.teacher else f"base {data_cfg.base}"))

    # Distillation (minilm/finetune/distill.py): the base is the teacher, cut down to the student's blocks.
    distill, chat = distill_cfg.teacher is not None, data_cfg.task == "chat"
    if chat:
        refuse_for_chat(configs)
        base_dir = chat_base_path(data_cfg.base)
    elif distill:
        base_dir = teacher_folder(distill_cfg, data_cfg, peft_cfg, given)
    else:
        base_dir = base_folder_of(data_cfg.base, data_cfg.task)
    base_label = f"the teacher --teacher {distill_cfg.teacher}" if distill else f"the base model --base {data_cfg.base}"
    inputs = {base_label: base_dir, f"--data {data_cfg.data}": data_cfg.data, f"--val_data {data_cfg.val_data}":
              data_cfg.val_data, f"--transfer_data {distill_cfg.transfer_data}": distill_cfg.transfer_data}
    check_out_dir(train_cfg.out_dir, train_cfg.resume, train_cfg.overwrite, inputs, "finetune.py")  # before loading
    seed_everything(train_cfg.seed)
    teacher = open_teacher(base_dir, distill_cfg, base_model_folder, lambda: named_tokenizer("gpt2")) if distill else None
    from_base = distill and distill_cfg.student_init == "base"  # DistilBERT's start: the pretrained blocks
    pretrained = open_base(data_cfg.base, base_folder_of(data_cfg.base, data_cfg.task)) if from_base else None
    if chat:
        base, answer_end_ids = open_chat_base(data_cfg, base_dir)
    else:
        base = student_base(teacher, distill_cfg.layers, pretrained) if distill else open_base(data_cfg.base, base_dir)
    set_attention(base.backbone, data_cfg.attn_impl)
    family = backbone_family(base.backbone)
    if data_cfg.task == "lm" and family != "gpt":
        raise ConfigError(f"--task lm continues a GPT; --base {data_cfg.base} is a BERT")
    record = backbone_record(base.backbone)  # before a head changes the backbone
    if data_cfg.task == "lm":
        block_size = min(data_cfg.max_length, base.backbone.config.block_size)
        task, labels = build_lm_task(data_cfg, base.tokenizer, block_size), None
    elif chat:
        task, labels = build_chat_task(data_cfg, base.tokenizer, answer_end_ids, base.backbone.config.block_size), None
    else:  # EDA augmentation of the training split (data/augment.py), synonyms from the base's embeddings
        augment = make_augmenter(configs["augment"], data_cfg.task, base.tokenizer,
                                 word_embedding(base.backbone).weight, train_cfg.seed)
        task, labels = build_labelled_task(data_cfg, base.tokenizer, family, augment)
    model = build_model(data_cfg, base.backbone, len(labels) if labels else None)
    if distill:  # the student starts from the teacher's head and learns from its outputs
        reads_transfer = distill_cfg.transfer_data and distill_cfg.uses_transfer
        transfer = transfer_set(distill_cfg, data_cfg, base.tokenizer, family) if reads_transfer else None
        task = distillation_task(model, task, teacher, distill_cfg, data_cfg, transfer, train_cfg.seed)
    # AdaLoRA's controller (None for the other methods) adds a loss penalty and prunes ranks each step.
    try:
        task.peft_controller = apply_peft(model, peft_cfg, [] if data_cfg.task in HEADLESS_TASKS else HEAD_NAMES)
    except ValueError as err:  # settings that do not fit this model, e.g. a LoRA target its blocks lack
        raise ConfigError(f"--method {peft_cfg.method}: {err}") from None
    task = adversarial_task(task, model, configs["adversarial"])  # FGM / PGD (minilm/finetune/adversarial.py)
    if "metric" not in given and configs["preset"] is None:  # BIO tags: entity F1 rather than token accuracy
        train_cfg.metric, train_cfg.metric_goal = task.default_metric
    print(f"best checkpoint by {train_cfg.metric} ({train_cfg.metric_goal})")
    print(f"parameters: {parameter_report(model)}")

    checkpoint_config = {
        "model_class": type(model).__name__, "task": data_cfg.task, "labels": labels, "base": base.pointer,
        "backbone": record, "peft": asdict(peft_cfg), "peft_applied": peft_cfg.method not in ("full", "freeze"),
        "head": {"dropout": data_cfg.head_dropout, "pooling": getattr(model, "pooling", None)},
        "data": asdict(data_cfg), "remedies": {**asdict(configs["adversarial"]), **asdict(configs["augment"])},
    }
    if data_cfg.task in HEADLESS_TASKS:
        checkpoint_config["model"] = record["model"]  # a full-method result is also a plain GPT/Llama checkpoint
    if distill:
        checkpoint_config["distill"] = {**asdict(distill_cfg), "teacher": str(teacher.folder.resolve())}
    trainer = FinetuneTrainer(model.train(), task, train_cfg, checkpoint_config,
                              write_extra=lambda folder: base.tokenizer.save(folder / "tokenizer"))
    before = trainer.evaluate()
    print("before: " + format_metrics(before))
    after = trainer.run()
    print("after:  " + format_metrics(after))
    print(f"best {train_cfg.metric} {trainer.best:.4f}; fine-tuned checkpoint: {train_cfg.out_dir}/best "
          + ("(the whole student: no base needed)" if distill else f"(trained tensors only, base {data_cfg.base})"))
    if data_cfg.merge:
        print(f"merged: {save_merged(trainer, checkpoint_config)}")
    if chat:
        print(chat_hint(train_cfg.out_dir, data_cfg.merge, peft_cfg.method))
    return {"before": before, "after": after, "best": trainer.best}


def format_metrics(metrics: dict) -> str:
    shown = dict(metrics)
    if "val_loss" in shown and "val_ppl" not in shown and "val_acc" not in shown:
        shown["val_ppl"] = perplexity(shown["val_loss"])
    return " | ".join(f"{name} {value:.4f}" for name, value in shown.items())


def save_merged(trainer, checkpoint_config: dict) -> Path:
    """out_dir/merged: the best weights, LoRA folded in and prefixes precomputed, every tensor saved."""
    model = trainer.model
    trained, _, _ = load_checkpoint(trainer.out_dir / "best", with_train_state=False)
    load_trained_weights(model, trained)
    merge_lora(model)
    method = checkpoint_config["peft"]["method"]
    if method == "prefix":
        precompute_prefix(model)
    config = {**checkpoint_config, "base": None, "merged": True,
              "peft_applied": method in ("adapter", "prefix")}  # adapters and prefixes cannot fold away
    return save_checkpoint(trainer.out_dir / "merged", model, config, None, trainer.write_extra)


# ------------------------------------------------------------------------------------------- predict

def load_checkpoints(ckpts) -> tuple:
    """(model, tokenizer, config) of one fine-tuned checkpoint, or of several averaged as an ensemble
    (minilm/finetune/ensemble.py), and each one's own (model, tokenizer, config)."""
    ckpts = [ckpts] if isinstance(ckpts, (str, Path)) else list(ckpts)
    loaded = [load_finetuned(ckpt, resolve_alias=model_path, gpt2_tokenizer=lambda: named_tokenizer("gpt2"),
                             load_decoder=load_decoder) for ckpt in ckpts]
    if len(loaded) == 1:
        return loaded[0], loaded
    return ensemble_of(loaded, [str(ckpt) for ckpt in ckpts], fingerprint_tokenizer), loaded


@torch.no_grad()
def predict(ckpt, texts: list[str], max_new_tokens: int = 200) -> list:
    """What a fine-tuned checkpoint (or an ensemble: a list of them) says about each text:
    classify -> (label, probability); tag -> [(word, tag), ...]; lm -> the text continued."""
    (model, tokenizer, config), _ = load_checkpoints(ckpt)
    max_length = config["data"]["max_length"]
    results = []
    for text in texts:
        if config["task"] == "chat":
            results.append(greedy_answer(model, tokenizer, text, end_ids(tokenizer), max_new_tokens))
            continue
        if config["task"] == "lm":
            ids = torch.tensor([tokenizer.encode(text)])  # (1, T)
            out = model.generate(ids, max_new_tokens, temperature=0.8, top_k=200,
                                 generator=torch.Generator().manual_seed(0))
            results.append(tokenizer.decode(out[0].tolist()))
            continue
        family = model.family
        if config["task"] == "classify":
            inputs = encode_text(tokenizer, family, text, None, max_length)
            logits, _ = model(torch.tensor([inputs["input_ids"]]), token_type_ids=torch.tensor([inputs["token_type_ids"]]))
            probs = logits[0].softmax(dim=-1)  # (num_labels,)
            results.append((config["labels"][int(probs.argmax())], float(probs.max())))
        else:
            words = text.split()
            inputs, positions = encode_words(tokenizer, family, words, max_length)
            logits, _ = model(torch.tensor([inputs["input_ids"]]), token_type_ids=torch.tensor([inputs["token_type_ids"]]))
            tags = [config["labels"][int(i)] for i in logits[0, positions].argmax(dim=-1)]
            results.append(list(zip(words, tags)))
    return results


@dataclass
class PredictConfig:
    ckpt: list[str] = field(metadata={"help": "a finetune.py out_dir, or its best/ or merged/ folder; "
                                           "several: an ensemble that averages their probabilities"})
    texts: list[str] = field(default_factory=list, metadata={
        "nargs": "+", "help": "texts to classify, tag (words split on spaces), continue, or answer (chat)"})
    max_new_tokens: int = field(default=200, metadata={"help": "lm, chat: tokens to generate"})

    def __post_init__(self):
        if self.max_new_tokens < 0:
            raise ConfigError(f"--max_new_tokens must be >= 0, got {self.max_new_tokens}")


def predict_main(argv: list[str]):
    cfg = parse_args({}, {"predict": PredictConfig}, argv, description="Run a fine-tuned checkpoint.",
                     prog="finetune.py predict")["predict"]
    results = predict(cfg.ckpt, cfg.texts, cfg.max_new_tokens)
    for text, result in zip(cfg.texts, results):
        if isinstance(result, tuple):
            print(f"{result[0]}\t{result[1]:.3f}\t{text}")
        elif isinstance(result, list):
            print(" ".join(f"{word}/{tag}" for word, tag in result))
            if looks_like_bio(tag for _, tag in result):
                print("entities: " + ", ".join(f"{text} ({kind})" for text, kind in entity_spans(result)))
        else:
            print(result)
    return results


@dataclass
class EvaluateConfig:
    ckpt: list[str] = field(metadata={"help": "a finetune.py out_dir (or best/, merged/); several: each one "
                                           "and their ensemble"})
    data: str | None = field(default=None, metadata={"help": "score this file (default: the held-out split "
                                                     "of the first checkpoint's training data)"})
    batch_size: int = field(default=32, metadata={"help": "examples per forward pass"})


@torch.no_grad()
def evaluate(ckpts, data: str | None = None, batch_size: int = 32) -> dict[str, dict]:
    """{checkpoint or "ensemble": metrics} on the held-out split the first checkpoint was trained with
    (it is rebuilt from its config.json, the same examples), or on --data; a BIO tagger is also scored
    per entity type, next to the memorising baseline (data/ner_data.py)."""
    (ensemble, tokenizer, config), loaded = load_checkpoints(ckpts)
    models = {str(ckpt): model for ckpt, (model, _, _) in zip(ckpts, loaded)}
    if len(loaded) > 1:
        models["ensemble"] = ensemble
    data_cfg = FinetuneConfig(**config["data"])
    if data_cfg.task in HEADLESS_TASKS:
        raise ConfigError(f"finetune.py evaluate scores classify and tag checkpoints; for {data_cfg.task}, training "
                          "reports val_loss")
    examples = read_examples(data_cfg)  # the very split it was trained with
    if data is not None:  # score another file; the training part (the baseline memorises it) stays the same
        examples["val"] = read_examples(replace(data_cfg, val_data=data))["val"]
    task = encode_labelled(data_cfg, examples, LabelMap(config["labels"]), tokenizer, ensemble.family)
    results = {}
    for name, model in models.items():
        val_loss, golds, preds = task.predict_split("val", model, batch_size, "cpu")
        results[name] = {"val_loss": val_loss, **task.scores(golds, preds)}
        print(f"{name}: {format_metrics(results[name])}")
    if data_cfg.task == "tag" and is_bio_tagset(config["labels"]):  # the last model: the ensemble if several
        baseline = memorised_baseline(examples["train"], examples["val"], golds)
        results["memorised"] = {f"val_{name}": value for name, value in entity_scores(golds, baseline).items()}
        print(format_entity_table(golds, {"model" if len(loaded) == 1 else "ensemble": preds, "memorised": baseline}))
    return results


def evaluate_main(argv: list[str]):
    cfg = parse_args({}, {"evaluate": EvaluateConfig}, argv, description="Score fine-tuned checkpoints and "
                     "their ensemble on held-out data.", prog="finetune.py evaluate")["evaluate"]
    return evaluate(cfg.ckpt, cfg.data, cfg.batch_size)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["predict"]:
        return predict_main(argv[1:])
    if argv[:1] == ["evaluate"]:
        return evaluate_main(argv[1:])
    return train(argv)


if __name__ == "__main__":
    sys.exit(run_command(main))
