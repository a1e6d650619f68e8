"""Knowledge distillation, DistilBERT-style: a small student learns from a fine-tuned teacher
(docs/distillation.md has the math and the results).

    student   the teacher with some of its blocks left out (default: blocks 0, 2, 4 of 6). The
              embeddings, the kept blocks and the classification head are copied as they are, so the
              student starts as a working, if worse, classifier; or (--student_init base) the same
              blocks of the pretrained base the teacher was fine-tuned from, with a fresh head.
    loss      ce_weight · CE(z_s, y)                                     the labels
            + kd_weight · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))    the teacher's probabilities
            + cos_weight · mean(1 − cos(h_s, h_t))                        the teacher's hidden states
    transfer  --transfer_data: unlabelled sentences the teacher labels. Each step adds a batch of them
              to the KL term (and to nothing else: their batch has no labels); a sentence that is one of
              the labelled ones, held-out or not, is dropped first.

z_s, z_t are the student's and the teacher's logits, T the temperature. In the cosine term each
student block's output h_s is compared, on the real tokens, with the output of the last teacher block
it stands in for: student block j replaces teacher blocks layers[j] .. layers[j + 1] - 1.

finetune.py --teacher FOLDER (the recipe sentiment-distill) puts it together: DistillConfig holds the
flags, open_teacher loads and checks the teacher, student_backbone cuts its blocks, and DistillationTask
is the Task the shared Trainer drives. The teacher never trains: it lives in the Task, not in the model
the optimizer sees, and the saved student is a whole model (no base) that `finetune.py predict` loads.
Its logits on the training and transfer sentences are computed once, before the first step
(teacher_cache.py), unless the cosine term needs its hidden states.
"""

import contextlib
import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import ConfigError, DataError, MissingFileError

from ..hf import read_config
from ..model.losses import IGNORE_INDEX
from ..training.checkpoint import unwrap_model
from .checkpoints import Base, load_finetuned
from .tasks import ClassificationTask, pad_batch
from .teacher_cache import TeacherLogitCache

LOSS_WEIGHTS = ("ce_weight", "kd_weight", "cos_weight")


@dataclass
class DistillConfig:
    teacher: str | None = field(default=None, metadata={
        "help": "distil from this finetune.py classify checkpoint (an out_dir or its best/): the student starts "
                "as the teacher's --student_layers, and --base is not used"})
    student_layers: str = field(default="0,2,4", metadata={
        "help": "the teacher's blocks the student keeps, in order (comma-separated)"})
    student_init: str = field(default="teacher", metadata={"choices": ("teacher", "base"), "help": "the student "
                              "starts as those blocks and the head of the fine-tuned teacher, or (base) as those "
                              "blocks of the pretrained --base with a fresh head, as DistilBERT did"})
    temperature: float = field(default=2.0, metadata={"help": "T: both softmaxes of the KL term read z / T"})
    kd_weight: float = field(default=1.0, metadata={"help": "weight of T² · KL to the teacher's probabilities "
                                                    "(0 and --cos_weight 0: the student learns from the labels alone)"})
    ce_weight: float = field(default=1.0, metadata={"help": "weight of the cross-entropy with the labels"})
    cos_weight: float = field(default=0.0, metadata={"help": "weight of 1 - cos between student and teacher "
                                                     "hidden states"})
    transfer_data: str | None = field(default=None, metadata={
        "help": "unlabelled sentences (a file or a data asset, e.g. sentiment-pang-lee-reviews) that the teacher "
                "labels: each step adds --transfer_batch of them to the KL term only (not used with --kd_weight 0)"})
    transfer_batch: int = field(default=32, metadata={"help": "transfer sentences per step, beside --batch_size "
                                                      "labelled ones"})
    transfer_examples: int = field(default=0, metadata={"help": "use a fixed sample of N transfer sentences "
                                                        "(0: all)"})
    labelled_examples: int = field(default=0, metadata={"help": "the few-label regime: train on a fixed sample of "
                                   "N labelled training sentences; the rest of the training split joins the "
                                   "transfer set without its labels (0: every label is used)"})
    teacher_cache: bool = field(default=True, metadata={
        "help": "run the teacher once over the training and transfer sentences before training and look its "
                "logits up at each step (teacher_cache.py); off, or with --cos_weight > 0, it runs on every batch"})

    def __post_init__(self):
        if self.student_init not in ("teacher", "base"):
            raise ConfigError(f"--student_init must be teacher or base, got {self.student_init!r}")
        if not 0 < self.temperature < math.inf:
            raise ConfigError(f"--temperature must be a positive number, got {self.temperature}")
        for name in LOSS_WEIGHTS:
            if not 0 <= getattr(self, name) < math.inf:  # also catches nan
                raise ConfigError(f"--{name} must be a number >= 0, got {getattr(self, name)}")
        if not any(getattr(self, name) for name in LOSS_WEIGHTS):
            raise ConfigError("--ce_weight, --kd_weight and --cos_weight are all 0: nothing to learn from")
        if self.transfer_batch < 1 or self.transfer_examples < 0 or self.labelled_examples < 0:
            raise ConfigError(f"--transfer_batch must be >= 1, --transfer_examples and --labelled_examples >= 0; "
                              f"got {self.transfer_batch}, {self.transfer_examples} and {self.labelled_examples}")
        self.layers  # parses --student_layers, so a mistake in it stops the run before anything loads

    @property
    def layers(self) -> list[int]:
        """--student_layers as a list: "0,2,4" -> [0, 2, 4]."""
        try:
            layers = [int(part) for part in self.student_layers.split(",")]
        except ValueError:
            raise ConfigError(f"--student_layers {self.student_layers!r}: give block numbers separated by "
                              "commas, e.g. 0,2,4") from None
        if min(layers) < 0 or any(a >= b for a, b in zip(layers, layers[1:])):
            raise ConfigError(f"--student_layers {self.student_layers}: the blocks must be >= 0 and in increasing "
                              "order, each once (block j of the student stands in for the teacher's blocks "
                              "from layers[j] to the next one)")
        return layers

    @property
    def uses_teacher_outputs(self) -> bool:
        """False for --kd_weight 0 --cos_weight 0: the teacher only gives the student its first weights."""
        return self.kd_weight > 0 or self.cos_weight > 0

    @property
    def uses_transfer(self) -> bool:
        """The transfer sentences have no labels: only the KL term can learn from them."""
        return (self.transfer_data is not None or self.labelled_examples > 0) and self.kd_weight > 0


# ------------------------------------------------------------------------------------------ the teacher

@dataclass
class Teacher:
    model: nn.Module  # a SequenceClassifier, in eval mode; never trained here
    tokenizer: object
    config: dict  # its config.json
    folder: Path


def teacher_folder(cfg: DistillConfig, data_cfg, peft_cfg, given: set[str]) -> Path:
    """The folder of the teacher --teacher names (an out_dir means its best/), once the flags that go
    with distillation are checked; nothing is loaded yet."""
    if data_cfg.task != "classify":
        raise ConfigError(f"--teacher distils a classifier; --task {data_cfg.task} has no teacher")
    if peft_cfg.method != "full":
        raise ConfigError(f"--teacher trains the whole student; --method {peft_cfg.method} is not used with it "
                          "(leave --method out)")
    if "base" in given and cfg.student_init == "teacher":
        raise ConfigError("--base and --teacher: the student is built from the teacher's own blocks, so there "
                          "is no other base; leave --base out (or pass --student_init base to start the student "
                          "from the blocks of --base)")
    folder = Path(cfg.teacher)
    if not (folder / "config.json").exists() and (folder / "best" / "config.json").exists():
        folder = folder / "best"  # a run's out_dir: its best checkpoint
    if not (folder / "config.json").is_file():
        raise MissingFileError(f"--teacher {cfg.teacher}: no finetune.py checkpoint there (no config.json); "
                               "fine-tune the teacher first, e.g. python finetune.py --recipe sentiment-minilm "
                               "--method full")
    return folder


def open_teacher(folder: Path, cfg: DistillConfig, resolve_alias=None, gpt2_tokenizer=None) -> Teacher:
    """The teacher in folder, checked: a classifier whose modules are plain, with at least as many
    blocks as the student keeps. resolve_alias, gpt2_tokenizer: as for load_finetuned."""
    config = read_config(folder)
    if config.get("task") != "classify":
        raise ConfigError(f"--teacher {cfg.teacher}: a finetune.py --task classify checkpoint is needed, this one "
                          f"is {config.get('task') or config.get('model_class')!r}")
    if config.get("peft_applied"):
        method = config["peft"]["method"]
        raise ConfigError(f"--teacher {cfg.teacher} was fine-tuned with --method {method}, whose extra modules a "
                          "student cannot copy block by block; distil from a --method full fine-tune, or from "
                          "the merged/ folder of a LoRA fine-tune (finetune.py --merge)")
    model, tokenizer, config = load_finetuned(folder, resolve_alias, gpt2_tokenizer)
    check_student_fits(cfg.layers, model.backbone.config.n_layer, cfg.student_layers)
    return Teacher(model.requires_grad_(False), tokenizer, config, folder)


def check_student_fits(layers: list[int], n_teacher_layers: int, spec: str) -> None:
    if len(layers) > n_teacher_layers:
        raise ConfigError(f"--student_layers {spec} makes a student of {len(layers)} blocks, deeper than its "
                          f"teacher ({n_teacher_layers} blocks): a student keeps some of the teacher's blocks; "
                          f"choose fewer, e.g. --student_layers {','.join(map(str, range(0, n_teacher_layers, 2)))}")
    if layers[-1] >= n_teacher_layers:
        raise ConfigError(f"--student_layers {spec}: the teacher has blocks 0 to {n_teacher_layers - 1}, "
                          f"there is no block {layers[-1]}")


def student_base(teacher: Teacher, layers: list[int], pretrained: Base | None = None) -> Base:
    """What finetune.py fine-tunes: the student's backbone, cut from the teacher's or (--student_init
    base) from the pretrained base's, and the teacher's tokenizer. The pointer is None: the student is
    saved whole, so it needs no base model to load."""
    source = teacher.model.backbone if pretrained is None else pretrained.backbone
    if source.config.vocab_size != teacher.model.backbone.config.vocab_size:
        raise ConfigError(f"--student_init base: the base has {source.config.vocab_size} token ids, the teacher "
                          f"{teacher.model.backbone.config.vocab_size}; start the student from the base the "
                          "teacher was fine-tuned from")
    check_student_fits(layers, source.config.n_layer, ",".join(map(str, layers)))
    return Base(student_backbone(source, layers), teacher.tokenizer, pointer=None)


def student_backbone(backbone: nn.Module, layers: list[int]) -> nn.Module:
    """A copy of backbone (a Bert or GPT) that keeps only the blocks `layers`, in that order: student
    block j starts as a copy of teacher block layers[j]. Embeddings (and BERT's pooler) are copied too."""
    student = copy.deepcopy(backbone)
    student.blocks = nn.ModuleList(student.blocks[i] for i in layers)
    student.config = dataclasses.replace(student.config, n_layer=len(layers))  # a pruned block keeps its heads
    return student.train().requires_grad_(True)


def distillation_task(student: nn.Module, task: ClassificationTask, teacher: Teacher, cfg: DistillConfig,
                      data_cfg, transfer: list[dict] | None = None, seed: int = 0) -> "DistillationTask":
    """The Task that trains the student (a SequenceClassifier on student_base's backbone) from the
    teacher; first the student's head becomes a copy of the teacher's (--student_init teacher).
    transfer: the encoded --transfer_data sentences (no labels), or None; seed draws them."""
    check_reads_like_teacher(student, teacher, task.labels)
    if cfg.student_init == "teacher":
        student.classifier.load_state_dict(teacher.model.classifier.state_dict())
    note = data_split_note(teacher, data_cfg)
    if note:
        print(note)
    if cfg.labelled_examples:  # both the student and the control (--kd_weight 0) keep the same few labels
        labelled, unlabelled = few_labels(task.examples["train"], cfg.labelled_examples)
        task = ClassificationTask({**task.examples, "train": labelled}, task.pad_id, task.labels)
        transfer = (transfer or []) + unlabelled
    if transfer is not None and cfg.uses_transfer:  # the control (--kd_weight 0) has no use for it
        transfer = checked_transfer_set(transfer, task.examples)
    return DistillationTask(task, teacher, cfg, transfer, seed)


def few_labels(examples: list[dict], n: int) -> tuple[list[dict], list[dict]]:
    """(n of the examples with their labels, the others without): a fixed sample, the same whatever the
    seed, so every run of the few-label regime trains on the same n labels."""
    if n >= len(examples):
        raise ConfigError(f"--labelled_examples {n}: the training split has only {len(examples)} sentences; "
                          "keep fewer")
    keep = set(torch.randperm(len(examples), generator=torch.Generator().manual_seed(0))[:n].tolist())
    labelled = [item for i, item in enumerate(examples) if i in keep]
    unlabelled = [{name: value for name, value in item.items() if name != "labels"}
                  for i, item in enumerate(examples) if i not in keep]
    print(f"few labels: {n:,} labelled training sentences; the other {len(unlabelled):,} lose their labels")
    return labelled, unlabelled


def check_reads_like_teacher(student: nn.Module, teacher: Teacher, labels: list[str]) -> None:
    """The student must read the teacher's labels and pool as it does, or the logits do not compare."""
    teacher_labels = teacher.config["labels"]
    if labels != teacher_labels:
        raise ConfigError(f"the teacher {teacher.folder} was fine-tuned with the labels {teacher_labels}, but the "
                          f"data has {labels}: its logits would name other classes; distil on data labelled "
                          "as the teacher's was")
    if student.pooling != teacher.model.pooling:
        raise ConfigError(f"--pooling {student.pooling}: the teacher pools by {teacher.model.pooling!r}, and its "
                          f"head reads that vector; pass --pooling {teacher.model.pooling}")


def data_split_note(teacher: Teacher, data_cfg) -> str | None:
    """A warning when the teacher was fine-tuned on another split, which may hold this run's validation
    examples (its accuracy on them would then be flattered)."""
    keys = ("data", "val_data", "val_fraction", "max_examples", "text_column", "label_column")
    theirs, ours = teacher.config.get("data", {}), dataclasses.asdict(data_cfg)
    differ = [key for key in keys if theirs.get(key) != ours[key]]
    if not differ:
        return None
    return (f"note: the teacher was fine-tuned with other {', '.join('--' + k for k in differ)}; the examples "
            "held out here may be ones it trained on")


# ----------------------------------------------------------------------------------- the transfer set

def drop_labelled_overlap(transfer: list[dict], examples: dict[str, list[dict]]) -> tuple[list[dict], dict]:
    """The transfer sentences whose tokens are those of no labelled sentence, and how many were dropped
    for each split. A held-out sentence must never be trained on, not even with the teacher's label
    (that would leak the validation set into training); comparing token ids also catches copies that
    differ only in case or spacing."""
    seen = {split: {tuple(item["input_ids"]) for item in examples[split]} for split in ("val", "train")}
    kept, dropped = [], dict.fromkeys(seen, 0)
    for item in transfer:
        ids = tuple(item["input_ids"])
        split = next((name for name, ids_seen in seen.items() if ids in ids_seen), None)
        if split is None:
            kept.append(item)
        else:
            dropped[split] += 1
    return kept, dropped


def checked_transfer_set(transfer: list[dict], examples: dict[str, list[dict]]) -> list[dict]:
    kept, dropped = drop_labelled_overlap(transfer, examples)
    print(f"transfer: {len(kept):,} unlabelled sentences ({dropped['val']} dropped as held-out sentences, "
          f"{dropped['train']} as labelled training sentences)")
    if not kept:
        raise DataError("every --transfer_data sentence is one of the labelled sentences; the transfer set must "
                        "hold text beyond them")
    return kept


def unlabelled_batch(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """pad_batch for sentences without labels: the batch has no "labels" at all, so no cross-entropy
    can be computed from it."""
    batch = pad_batch([{**item, "labels": IGNORE_INDEX} for item in items], pad_id)
    del batch["labels"]
    return batch  # input_ids, attention_mask, token_type_ids: (B, T)


# ------------------------------------------------------------------------------------------- the loss

def soft_cross_entropy_kl(student_logits, teacher_logits, temperature: float):
    """T² · KL(p_t ‖ p_s), p = softmax(z / T), averaged over the batch. logits (B, num_labels).

    KL(p_t ‖ p_s) = Σ_c p_t,c · (log p_t,c − log p_s,c). Its gradient with respect to z_s is
    (p_s − p_t) / T, which shrinks as 1 / T² for large T; the factor T² undoes that, so changing T
    does not change how much this term weighs against the cross-entropy (docs/distillation.md)."""
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)  # (B, num_labels)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)  # (B,)
    return temperature ** 2 * kl.mean()


def hidden_cosine_loss(student_hidden: list, teacher_hidden: list, attention_mask):
    """mean over the pairs and the real tokens of 1 − cos(h_s, h_t); each h (B, T, C), mask (B, T)."""
    real = attention_mask.bool()  # (B, T)
    losses = [1 - F.cosine_similarity(h_s[real], h_t[real], dim=-1).mean()  # (N real tokens, C) -> ()
              for h_s, h_t in zip(student_hidden, teacher_hidden)]
    return torch.stack(losses).mean()


def matched_teacher_blocks(layers: list[int], n_teacher_layers: int) -> list[int]:
    """For each student block j, the teacher block whose output it should reproduce: the last of
    those it stands in for. [0, 2, 4] of 6 -> [1, 3, 5]."""
    return [nxt - 1 for nxt in layers[1:]] + [n_teacher_layers - 1]


@contextlib.contextmanager
def block_outputs(backbone: nn.Module):
    """Collect the output of each of backbone's blocks (B, T, C), in order, during the forward passes
    run inside the `with`."""
    outputs = []
    hooks = [block.register_forward_hook(lambda module, inputs, output: outputs.append(output))
             for block in backbone.blocks]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


class DistillationTask(ClassificationTask):
    """The classification Task with the teacher beside it: in training the loss is the module
    docstring's sum; evaluation (the student in eval mode) reports the plain cross-entropy and
    accuracy, comparable with any fine-tune's."""

    def __init__(self, task: ClassificationTask, teacher: Teacher, cfg: DistillConfig,
                 transfer: list[dict] | None = None, seed: int = 0):
        super().__init__(task.examples, task.pad_id, task.labels)
        self.teacher, self.cfg = teacher, cfg
        n_teacher_layers = teacher.model.backbone.config.n_layer
        self.matched = matched_teacher_blocks(cfg.layers, n_teacher_layers)
        self.transfer = transfer if cfg.uses_transfer else None
        # Its own generator: the labelled batches stay exactly those of the control (--kd_weight 0).
        self.transfer_generator = torch.Generator().manual_seed(seed)
        # The teacher is fixed, so its logits on the fixed sentences are too: compute them once. The
        # cosine term needs its hidden states, which are too many to keep, so there it runs live.
        self.cache = None
        if cfg.teacher_cache and cfg.kd_weight > 0 and cfg.cos_weight == 0:
            self.cache = TeacherLogitCache(teacher.model, self.examples["train"] + (self.transfer or []), self.pad_id)

    def loss(self, model, batch):
        if not model.training or not self.cfg.uses_teacher_outputs:
            logits, ce = model(**batch)
            return ce * (self.cfg.ce_weight if model.training else 1.0)
        backbone = unwrap_model(model).backbone  # its block outputs are kept only for the cosine term
        keep_hidden = block_outputs(backbone) if self.cfg.cos_weight > 0 else contextlib.nullcontext()
        with keep_hidden as student_hidden:
            logits, ce = model(**batch)  # (B, num_labels)
        teacher_logits, teacher_hidden = self.teacher_outputs(batch)
        if self.transfer:  # unlabelled sentences join the KL term only: their batch has no labels
            device = batch["input_ids"].device
            unlabelled = {name: tensor.to(device) for name, tensor in self.transfer_batch().items()}
            logits = torch.cat([logits, model(**unlabelled)[0]])  # (B + B_transfer, num_labels)
            teacher_logits = torch.cat([teacher_logits, self.teacher_outputs(unlabelled)[0]])
        loss = self.cfg.ce_weight * ce
        loss = loss + self.cfg.kd_weight * soft_cross_entropy_kl(logits, teacher_logits, self.cfg.temperature)
        if self.cfg.cos_weight > 0:
            matched = [teacher_hidden[i] for i in self.matched]
            loss = loss + self.cfg.cos_weight * hidden_cosine_loss(student_hidden, matched, batch["attention_mask"])
        return loss

    def transfer_batch(self) -> dict[str, torch.Tensor]:
        """--transfer_batch random transfer sentences (with replacement), padded, without labels."""
        picks = torch.randint(len(self.transfer), (self.cfg.transfer_batch,), generator=self.transfer_generator)
        return unlabelled_batch([self.transfer[i] for i in picks.tolist()], self.pad_id)

    @torch.no_grad()
    def teacher_outputs(self, batch):
        """The teacher's logits (B, num_labels) and every block's output, without dropout or gradients
        (from the cache: the logits alone, and None)."""
        if self.cache is not None:
            return self.cache.lookup(batch), None
        teacher = self.teacher.model.to(batch["input_ids"].device)  # a no-op after the first batch
        inputs = {name: tensor for name, tensor in batch.items() if name != "labels"}
        with block_outputs(teacher.backbone) as hidden:
            logits, _ = teacher(**inputs)
        return logits.float(), hidden
