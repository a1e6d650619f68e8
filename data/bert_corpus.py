"""The BERT pretraining corpus of train_bert.py: documents, the WordPiece tokenizer, pair samplers.

    DataConfig                its command-line fields (train_bert.py --help shows them)
    prepare_data(data_cfg)    -> tokenizer, one sampler per split (and "phase1"), the most frequent
                                 training token (the MLM baseline), the corpus fingerprint

Documents are Shakespeare's plays by default (validation: the tail of each play), or the blank-line
separated documents of --data (validation: whole documents). The objective picks the sequences
(minilm/training/objectives.py): data/bert_pairs.py cuts NSP or SOP pairs, data/full_sentences.py
RoBERTa's and ELECTRA's full-sentence segments.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import CheckpointError, ConfigError, MissingFileError

from data.assets import cache_dir
from data.bert_pairs import (PairSampler, cached_tokenize_documents, read_documents, split_documents_by_tail,
                             split_documents_evenly)
from data.full_sentences import FullSentenceSampler
from data.prepare import fingerprint_tokenizer
from data.shakespeare import load_plays
from data.tokenizers import TOKENIZER_KINDS, cached_tokenizer
from minilm.hf import read_config
from minilm.training.objectives import OBJECTIVES
from minilm.training.resume import text_fingerprint
from tokenizer import WordPieceTokenizer, load_tokenizer


# Every objective masks tokens, so the tokenizer needs [MASK] (and [CLS], [SEP], [PAD]): WordPiece has them.
# The others (the byte-level BPE of GPT-2 and RoBERTa, char, sentencepiece) have no such roles here.
MASKING_TOKENIZERS = ("wordpiece", "bert-base-uncased")


@dataclass
class DataConfig:
    objective: str = field(default="mlm+nsp", metadata={
        "choices": tuple(OBJECTIVES), "help": "mlm+nsp: BERT (BertForPreTraining on NSP pairs); mlm: RoBERTa "
        "(BertForMaskedLM on full sentences); mlm+sop: ALBERT (sentence-order pairs); electra: ELECTRA "
        "(generator + discriminator on full sentences; --config electra-small --help lists the generator's flags)"})
    data: str | None = field(default=None, metadata={"help": "a UTF-8 text file, blank lines between documents "
                                                             "(default: Shakespeare's plays, one per document)"})
    tokenizer: str = field(default="wordpiece", metadata={"choices": TOKENIZER_KINDS, "help": "wordpiece: trained "
                                                          f"on the corpus; only {' and '.join(MASKING_TOKENIZERS)} "
                                                          "have the [MASK] token masked-LM needs"})
    tokenizer_vocab_size: int = field(default=4096, metadata={"help": "pieces in the trained WordPiece vocabulary"})
    val_fraction: float = field(default=0.1, metadata={"help": "held out: the tail of each play, or whole "
                                                               "documents of --data"})
    max_seq_len: int = field(default=64, metadata={"help": "tokens per pair, [CLS] and [SEP]s included"})
    short_seq_prob: float = field(default=0.1, metadata={"help": "share of pairs with a random shorter length"})
    mlm_prob: float = field(default=0.15, metadata={"help": "share of tokens chosen for masked-LM"})
    nsp_weight: float = field(default=1.0, metadata={"help": "training loss = mlm_loss + nsp_weight * nsp_loss "
                                                             "(BERT: 1; the SOP loss with mlm+sop)"})
    init_from: str | None = field(default=None, metadata={"help": "a train_bert.py checkpoint of the same objective "
                                                                  "(or, for mlm+nsp and mlm+sop, a Hugging Face BERT "
                                                                  "folder) to continue from"})
    # BERT's two phases (90% of its steps on 128-token pairs, then 512): short pairs are cheap and NSP
    # leaves chance on them sooner. Validation always uses max_seq_len.
    phase1_iters: int = field(default=0, metadata={"help": "the first N training steps draw shorter pairs "
                                                            "(0: every step uses max_seq_len)"})
    phase1_seq_len: int = field(default=64, metadata={"help": "tokens per pair during phase1_iters"})
    phase1_batch_size: int = field(default=64, metadata={"help": "pairs per step during phase1_iters"})
    rtd_curriculum_iters: int = field(default=0, metadata={"help": "ELECTRA: over the first N steps the replaced "
                                                                    "tokens move from uniformly random ones (easy) "
                                                                    "to the generator's samples; 0: samples only"})

    def __post_init__(self):
        if self.tokenizer not in MASKING_TOKENIZERS:
            raise ConfigError(f"--tokenizer {self.tokenizer} has no [MASK] token, and --objective {self.objective} "
                              f"({OBJECTIVES[self.objective].paper}) masks tokens; use --tokenizer wordpiece (trained "
                              "on the corpus) or bert-base-uncased")
        for name in ("val_fraction", "mlm_prob"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be between 0 and 1 (exclusive), got {getattr(self, name)}")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            raise ConfigError(f"short_seq_prob must be in [0, 1], got {self.short_seq_prob}")
        for name in ("max_seq_len", "phase1_seq_len"):
            if getattr(self, name) < 5:
                raise ConfigError(f"{name} must be at least 5 ([CLS] A [SEP] B [SEP]), got {getattr(self, name)}")
        if self.rtd_curriculum_iters < 0:
            raise ConfigError(f"rtd_curriculum_iters must be >= 0, got {self.rtd_curriculum_iters}")
        if self.rtd_curriculum_iters and self.objective != "electra":
            raise ConfigError(f"rtd_curriculum_iters is ELECTRA's curriculum of replaced tokens; --objective "
                              f"{self.objective} replaces none: drop the flag or use --objective electra")
        if self.phase1_iters < 0 or self.phase1_batch_size < 1:
            raise ConfigError(f"phase1_iters must be >= 0 and phase1_batch_size >= 1, got {self.phase1_iters} "
                              f"and {self.phase1_batch_size}")
        if self.phase1_iters and self.phase1_seq_len > self.max_seq_len:
            raise ConfigError(f"phase1_seq_len ({self.phase1_seq_len}) is for shorter pairs than max_seq_len "
                              f"({self.max_seq_len}); lower --phase1_seq_len")


def load_documents(data_cfg: DataConfig) -> dict[str, list[str]]:
    """Training and validation documents: the tail of each play, or whole documents of --data."""
    if data_cfg.data is None:
        train, val = split_documents_by_tail(list(load_plays().values()), data_cfg.val_fraction)
    else:
        train, val = split_documents_evenly(read_documents(data_cfg.data), data_cfg.val_fraction)
    return {"train": train, "val": val}


def init_folder(init_from: str, objective: str = "mlm+nsp") -> Path:
    """The folder --init_from names: a train_bert.py checkpoint of the objective's model class, or a run's
    out_dir (its best/); for the objectives of BertForPreTraining (mlm+nsp, mlm+sop), also a Hugging Face
    BERT folder."""
    folder = Path(init_from)
    if not (folder / "config.json").is_file() and (folder / "best" / "config.json").is_file():
        folder = folder / "best"
    wanted = OBJECTIVES[objective].model_class
    takes_hf = wanted == "BertForPreTraining"
    accepts = (f"--objective {objective} continues a {wanted} checkpoint of train_bert.py (its out_dir, best/ or "
               f"ckpt/){' or a Hugging Face BERT folder (config.json with model_type bert)' if takes_hf else ''}")
    if not (folder / "config.json").is_file():
        raise MissingFileError(f"--init_from {init_from}: no config.json there; {accepts}")
    config = read_config(folder)
    model_class, model_type = config.get("model_class"), config.get("model_type")
    if model_class is not None and (model_class != wanted or "task" in config):
        objective_of = next((name for name, o in OBJECTIVES.items() if o.model_class == model_class), None)
        if "task" in config:
            what, fix = "a finetune.py checkpoint", "pass a train_bert.py checkpoint"
        elif objective_of is None:  # GPT: train_gpt.py's
            what, fix = f"a {model_class} checkpoint, not one of train_bert.py's", "pass a train_bert.py checkpoint"
        else:
            what = (f"a train_bert.py checkpoint of {model_class} (--objective {objective_of}, "
                    f"{OBJECTIVES[objective_of].paper})")
            fix = "pass the --objective (or the --config) it was trained with, or another folder"
        raise CheckpointError(f"--init_from {folder} is {what}; {accepts}: {fix}")
    if model_class is None and not (takes_hf and model_type == "bert"):
        raise CheckpointError(f"--init_from {folder} is a {model_type!r} folder; {accepts}")
    return folder


def tokenizer_name(data_cfg: DataConfig) -> str:
    if data_cfg.init_from:
        folder = init_folder(data_cfg.init_from, data_cfg.objective)
        if (folder / "tokenizer").is_dir():
            return f"the tokenizer of {folder}"
        if (folder / "vocab.txt").is_file():
            return f"the vocab.txt of {folder}"
    return f"{data_cfg.tokenizer} tokenizer"


def build_tokenizer(data_cfg: DataConfig, train_documents: list[str]):
    """The tokenizer: the --init_from folder's own (a minilm tokenizer/ or a vocab.txt) if it has one,
    else --tokenizer."""
    if data_cfg.init_from:
        folder = init_folder(data_cfg.init_from, data_cfg.objective)
        if (folder / "tokenizer").is_dir():
            return load_tokenizer(folder / "tokenizer")
        if (folder / "vocab.txt").is_file():
            return WordPieceTokenizer.from_vocab_file(folder / "vocab.txt", lowercase=True)
    return cached_tokenizer(data_cfg.tokenizer, "\n".join(train_documents), data_cfg.tokenizer_vocab_size)


def documents_fingerprint(documents: dict[str, list[str]]) -> str:
    """sha256 over every document of every split, to notice a changed corpus on resume."""
    return text_fingerprint({split: "\0".join(docs) for split, docs in documents.items()})


def prepare_data(data_cfg: DataConfig, tokenizer=None):
    """Tokenizer (the one given, else build_tokenizer's), one sampler per split (and "phase1": shorter
    training sequences), the most frequent training token, and the documents' fingerprint."""
    documents = load_documents(data_cfg)
    tokenizer = tokenizer or build_tokenizer(data_cfg, documents["train"])
    fingerprint = fingerprint_tokenizer(tokenizer)
    samplers = {}
    for split, docs in documents.items():
        tokenized = cached_tokenize_documents(docs, tokenizer, fingerprint, cache_dir() / "bert_documents")
        samplers[split] = make_sampler(data_cfg, tokenized, data_cfg.max_seq_len, tokenizer, split)
    if data_cfg.phase1_iters:
        samplers["phase1"] = make_sampler(data_cfg, samplers["train"].docs, data_cfg.phase1_seq_len, tokenizer, "train")
    most_frequent_id = int(np.bincount(samplers["train"].docs.tokens).argmax())
    return tokenizer, samplers, most_frequent_id, documents_fingerprint(documents)


def make_sampler(data_cfg: DataConfig, docs, max_seq_len: int, tokenizer, split: str):
    """The objective's sequences: NSP or SOP pairs (PairSampler), or full sentences (FullSentenceSampler)."""
    sequences = OBJECTIVES[data_cfg.objective].sequences
    if sequences == "full":
        return FullSentenceSampler(docs, max_seq_len, tokenizer.cls_id, tokenizer.sep_id, split=split)
    return PairSampler(docs, max_seq_len, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id,
                       data_cfg.short_seq_prob, split=split, objective=sequences)
