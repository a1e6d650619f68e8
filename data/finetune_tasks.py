"""finetune.py's data, as Tasks: the examples of --data read and held out (data/finetune_data.py), encoded
with the base's tokenizer (minilm/finetune/encode.py, sft.py) into the Task each --task trains on.

    classify, tag   build_labelled_task: labelled examples, the label list from the data
    lm              build_lm_task: next-token windows of a text (default: the plays)
    chat            build_chat_task: conversations, only the answers scored
"""

from pathlib import Path

from minilm.finetune.config import FinetuneConfig
from minilm.finetune.encode import encode_tagged_sentences, encode_text_examples
from minilm.finetune.sft import ChatTask, encode_conversations
from minilm.finetune.tasks import ClassificationTask, PeftLanguageModelTask, TaggingTask
from minilm.model.losses import IGNORE_INDEX

from .assets import ASSETS, cache_dir, fetch
from .chatterbot import DERIVED_DATA
from .finetune_data import (FinetuneDataError, LabelMap, held_out_split, read_chat_file, read_classification_file,
                            read_tagging_file, subsample)
from .ner_data import check_bio_tags
from .prepare import fingerprint_tokenizer, load_corpus, prepare_token_files


def resolve_data_path(name: str | None):
    """A file path, or the name of a data asset (fetched on first use, never committed)."""
    if name is None or Path(name).exists():
        return name
    if name in ASSETS:
        return str(fetch(name))
    if name in DERIVED_DATA:  # made from an asset, e.g. chatterbot-intents: a .jsonl in the cache
        return str(DERIVED_DATA[name]())
    raise FinetuneDataError(f"--data {name}: no such file, and not a data asset "
                            f"({', '.join([*ASSETS, *DERIVED_DATA])})")


def read_examples(cfg: FinetuneConfig) -> dict[str, list]:
    """{"train": [...], "val": [...]}: raw examples, the validation split held out deterministically."""
    if cfg.data is None:
        raise FinetuneDataError(f"--task {cfg.task} needs --data <file>")

    def read(path):
        path = resolve_data_path(path)
        if cfg.task == "chat":
            return read_chat_file(path)
        if cfg.task == "tag":
            sentences = read_tagging_file(path, cfg.tag_format)
            note = check_bio_tags(path, sentences, cfg.tag_format)  # BIO-looking tags must all be BIO
            if note:
                print(note)
            return sentences
        return read_classification_file(path, cfg.text_column, cfg.label_column, cfg.text_b_column)

    examples = read(cfg.data)
    if cfg.max_examples:
        examples = subsample(examples, cfg.max_examples)
    if cfg.val_data is not None:
        return {"train": examples, "val": read(cfg.val_data)}
    train, val = held_out_split(examples, cfg.val_fraction)
    return {"train": train, "val": val}


def build_labelled_task(cfg: FinetuneConfig, tokenizer, family: str, augment=None):
    """The Task for classify / tag, and the label list it was built with.

    The labels are those of --data (the held-out part included: a rare tag that only landed in
    validation is still a known tag); a label in a separate --val_data file that --data lacks is an error."""
    examples = read_examples(cfg)
    labelled_from = examples["train"] + (examples["val"] if cfg.val_data is None else [])
    if augment is not None:  # examples -> examples + augmented copies; validation stays as it is
        examples["train"] = augment(examples["train"])
    if cfg.task == "classify":
        label_map = LabelMap.from_labels(e.label for e in labelled_from)
    else:
        label_map = LabelMap.from_labels(tag for s in labelled_from for tag in s.tags)
    task = encode_labelled(cfg, examples, label_map, tokenizer, family)
    print(f"data: {len(task.examples['train']):,} train / {len(task.examples['val']):,} val examples, "
          f"{len(label_map)} labels: {', '.join(label_map.labels[:12])}{' ...' if len(label_map) > 12 else ''}")
    return task, label_map.labels


def encode_labelled(cfg: FinetuneConfig, examples: dict[str, list], label_map: LabelMap, tokenizer, family: str):
    """The classify / tag Task over the examples of each split, encoded to ids with label_map."""
    if cfg.task == "classify":
        encoded = {split: encode_text_examples(items, tokenizer, family, label_map, cfg.max_length, split)
                   for split, items in examples.items()}
        task_cls = ClassificationTask
    else:
        encoded = {}
        for split, items in examples.items():
            encoded[split], n_cut = encode_tagged_sentences(items, tokenizer, family, label_map, cfg.max_length, split)
            if n_cut:
                print(f"note: {n_cut} {split} words did not fit in --max_length {cfg.max_length} and are left out")
        task_cls = TaggingTask
    pad_id = getattr(tokenizer, "pad_id", 0)  # GPT has no pad token: padding sits after the last real token
    return task_cls(encoded, pad_id, label_map.labels)


def build_lm_task(cfg: FinetuneConfig, tokenizer, block_size: int):
    """Next-token windows of --data (default: the plays), tokenized with the base's own tokenizer."""
    texts = load_corpus(resolve_data_path(cfg.data), cfg.val_fraction, block_size)
    fingerprint = fingerprint_tokenizer(tokenizer)
    tokens = prepare_token_files(texts, tokenizer, cache_dir() / "tokens" / fingerprint[:16], fingerprint)
    print(f"data: {len(tokens['train']):,} train / {len(tokens['val']):,} val tokens")
    return PeftLanguageModelTask(tokens, block_size)


def build_chat_task(cfg: FinetuneConfig, tokenizer, answer_end_ids, block_size: int) -> ChatTask:
    """Conversations rendered with the base's chat template, only the answers scored (minilm/finetune/sft.py)."""
    examples = read_examples(cfg)
    max_length = min(cfg.max_length, block_size)
    encoded = {}
    for split, items in examples.items():
        encoded[split], n_cut = encode_conversations(tokenizer, [e.messages for e in items], answer_end_ids,
                                                     max_length)
        if n_cut:
            print(f"note: {n_cut} {split} conversation(s) longer than --max_length {max_length} tokens are left out")
        if not encoded[split]:
            raise FinetuneDataError(f"no {split} conversation fits in --max_length {max_length} tokens; raise it "
                                    f"(the model reads up to {block_size})")
    answers = sum(t != IGNORE_INDEX for e in encoded["train"] for t in e["targets"])
    print(f"data: {len(encoded['train']):,} train / {len(encoded['val']):,} val conversations, {answers:,} "
          "answer tokens to learn in train")
    return ChatTask(encoded, getattr(tokenizer, "roles", {}).get("pad_token", 0))
