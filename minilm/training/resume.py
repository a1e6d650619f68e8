"""What a `--resume` run takes from its checkpoint: the model config and the tokenizer it trained with.

A resumed run must build exactly the model and the ids it stopped with. Rebuilding them from today's
flags and data would silently change them when a default, a preset or the corpus changed (a character
vocabulary of the same size but other characters remaps every id). So a resumed run reads the
checkpoint's config.json and:

  - takes every model field from it, and the tokenizer from its tokenizer/ folder (the checkpoint is
    ckpt/, or ckpt.old/ after a crash between the two renames of a save: checkpoint_to_resume);
  - refuses a flag given on the command line that disagrees with the checkpoint in a way that changes
    the weights or the ids, printing the checkpoint's value of each such field;
  - lets through what a run may change when it continues: the training flags (--lr, --max_iters, ...),
    dropout and the attention implementation, the data file (it says so when the text changed).
"""

import hashlib
from dataclasses import fields, replace

from common.errors import CheckpointError, ConfigError

from .checkpoint import checkpoint_to_resume, load_checkpoint
from .saved_config import check_saved_config, check_section

SCRIPT_OF = {"GPT": "train_gpt.py", "Llama": "train_gpt.py", "BertForPreTraining": "train_bert.py", "BertForMaskedLM": "train_bert.py",
             "Electra": "train_bert.py"}
FAMILY = {"GPT": "a GPT", "Llama": "a Llama", "BertForPreTraining": "a BERT", "BertForMaskedLM": "a RoBERTa",
          "Electra": "an ELECTRA"}
MAY_CHANGE_ON_RESUME = {"dropout", "attn_dropout", "attn_impl"}  # model fields that leave the weights as they are


def saved_run_config(out_dir, model_classes: str | tuple[str, ...]) -> dict:
    """The config.json of the checkpoint to resume in out_dir, checked to be one of model_classes'."""
    model_classes = (model_classes,) if isinstance(model_classes, str) else tuple(model_classes)
    folder = checkpoint_to_resume(out_dir)
    _, config, _ = load_checkpoint(folder, with_train_state=False)
    check_saved_config(folder, config)  # keys and types, as sample.py checks them (saved_config.py)
    saved_class = config.get("model_class")
    if saved_class not in model_classes:
        script = SCRIPT_OF.get(saved_class)
        hint = f"resume it with `python {script} --resume`" if script else "it is not a pretraining checkpoint"
        family = FAMILY.get(saved_class, f"a {saved_class!r}")
        raise CheckpointError(f"{folder} is {family} checkpoint, not one of {SCRIPT_OF[model_classes[0]]}: {hint}, "
                              "or choose another --out_dir")
    return config


def resumed_config(current, saved: dict, given: set[str], may_change: set[str]):
    """`current` (a config dataclass built from the flags) with every field taken from `saved`, except
    those in may_change that were given on the command line. A given flag that differs from the
    checkpoint and may not change is an error that lists the checkpoint's values."""
    check_section(current, saved)  # each saved value of the type of its field (saved_config.py)
    conflicts, values = [], {}
    for field in fields(current):
        if field.name not in saved:
            continue
        ours, theirs = getattr(current, field.name), saved[field.name]
        if field.name in given and ours != theirs:
            if field.name in may_change:
                continue
            conflicts.append(f"--{field.name} {ours} (the checkpoint has {theirs})")
        values[field.name] = theirs
    if conflicts:
        raise ConfigError("--resume continues the run exactly as it was built, but these flags change its weights "
                          f"or ids: {'; '.join(conflicts)}. Drop them to resume, or start a new run with "
                          "--overwrite or another --out_dir")
    return replace(current, **values)


def text_fingerprint(texts: dict[str, str]) -> str:
    """sha256 over the split texts a run trained on, to notice a changed corpus on resume."""
    digest = hashlib.sha256()
    for split in sorted(texts):
        digest.update(split.encode() + b"\0" + texts[split].encode("utf-8") + b"\0")
    return digest.hexdigest()


def note_changed_text(saved: dict, fingerprint: str) -> None:
    """Say so when a resumed run's text is not the text its checkpoint was trained on."""
    before = saved.get("data_sha256")
    if before is not None and before != fingerprint:
        print(f"note: the training text differs from the one this run started on (sha256 {before[:12]}... -> "
              f"{fingerprint[:12]}...); it continues on the new text with the checkpoint's tokenizer")
