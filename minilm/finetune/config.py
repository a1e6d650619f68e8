"""finetune.py's data settings: the task, the base, the data and how examples are cut (its --help groups
them under "data"). The training, method and distillation settings are TrainConfig, PeftConfig and
DistillConfig, beside the code they drive."""

from dataclasses import dataclass, field

from common.errors import ConfigError

from .chat_base import CHAT_TEMPLATES

TASKS = ("lm", "classify", "tag", "chat")


@dataclass
class FinetuneConfig:
    task: str = field(default="classify", metadata={"choices": TASKS, "help": "lm, classify, tag or chat "
                                                    "(instruction tuning of a decoder)"})
    base: str = field(default="minilm-l6", metadata={"help": "minilm-l6, a train_gpt/train_bert out_dir or "
                                                     "checkpoint, or a Hugging Face folder; chat: smollm2, a "
                                                     ".gguf file, a Llama folder or checkpoint"})
    data: str | None = field(default=None, metadata={"help": "the data file, or a data asset name "
                                                     "(e.g. sentiment-pang-lee); lm: default the plays; chat: a "
                                                     ".jsonl of {\"messages\": [...]} or chatterbot-chat"})
    chat_template: str | None = field(default=None, metadata={"help": "chat: write the conversations in this "
                                                              "format when the base has no chat template: chatml"})
    val_data: str | None = field(default=None, metadata={"help": "a validation file (default: hold out "
                                                         "val_fraction of --data)"})
    val_fraction: float = field(default=0.1, metadata={"help": "share held out when there is no --val_data"})
    max_examples: int = field(default=0, metadata={"help": "use N examples of --data, a fixed sample (0: all)"})
    text_column: str = field(default="text", metadata={"help": "classify: column name, or position for "
                                                       "a file without a header"})
    text_b_column: str | None = field(default=None, metadata={"help": "classify: second text of a pair"})
    label_column: str = field(default="label", metadata={"help": "classify: the label column"})
    tag_format: str = field(default="auto", metadata={"choices": ("auto", "conll", "slash"),
                                                      "help": "tag: CoNLL columns or word/TAG lines"})
    max_length: int = field(default=128, metadata={"help": "tokens per example (lm: per window)"})
    head_dropout: float = field(default=0.1, metadata={"help": "dropout before the task head"})
    pooling: str | None = field(default=None, metadata={"help": "classify: pooler (BERT default), last (GPT "
                                                        "default) or mean over the real tokens"})
    attn_impl: str = field(default="sdpa", metadata={"choices": ("manual", "sdpa"), "help": "attention: the "
                           "fused kernel (fast) or the written-out one (to step through)"})
    merge: bool = field(default=False, metadata={"help": "also write out_dir/merged: every tensor, LoRA "
                                                 "folded in, no base needed"})

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}")
        if self.max_length <= 0 or self.max_examples < 0:
            raise ConfigError("max_length must be positive and max_examples >= 0")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")
        if self.chat_template is not None and self.chat_template not in CHAT_TEMPLATES:
            raise ConfigError(f"--chat_template {self.chat_template}: choose from {', '.join(CHAT_TEMPLATES)}")
        if self.chat_template is not None and self.task != "chat":
            raise ConfigError(f"--chat_template is for --task chat, not --task {self.task}")
