"""The pretraining objectives of train_bert.py (--objective; each preset picks one). docs/successors.md.

    objective  paper    model (config.json's model_class)  sequences (data/)                  Task
    mlm+nsp    BERT     BertForPreTraining                  pairs, half with a random B        PretrainingTask
    mlm        RoBERTa  BertForMaskedLM                     full sentences, across documents   MaskedLMTask
    mlm+sop    ALBERT   BertForPreTraining                  pairs, half of them swapped        PretrainingTask
    electra    ELECTRA  Electra                             full sentences, across documents   ElectraTask

The model's other ideas (ALBERT's factorised and shared weights, RoBERTa's positions) are model config
fields, set by the presets (minilm/training/presets.py).
"""

from dataclasses import dataclass

from .bert_task import MaskedLMTask, PretrainingTask
from .electra_task import ElectraTask


@dataclass(frozen=True)
class Objective:
    paper: str
    model_class: str  # a key of minilm/training/checkpoint.py's MODEL_CLASSES
    sequences: str  # "nsp" or "sop" (data/bert_pairs.py's pairs), "full" (data/full_sentences.py)
    pair_task: str | None = None  # the pair head's task, named in the metrics; None: no pair head


OBJECTIVES = {
    "mlm+nsp": Objective("BERT", "BertForPreTraining", "nsp", pair_task="nsp"),
    "mlm": Objective("RoBERTa", "BertForMaskedLM", "full"),
    "mlm+sop": Objective("ALBERT", "BertForPreTraining", "sop", pair_task="sop"),
    "electra": Objective("ELECTRA", "Electra", "full"),
}


def make_task(objective: str, samplers: dict, tokenizer, data_cfg, batch_size: int, rtd_weight: float = 50.0):
    """The Task of an objective; data_cfg is train_bert.py's DataConfig (data/bert_corpus.py)."""
    spec = OBJECTIVES[objective]
    phases = dict(phase1_iters=data_cfg.phase1_iters, phase1_batch_size=data_cfg.phase1_batch_size,
                  batch_size=batch_size)
    if spec.pair_task is not None:
        return PretrainingTask(samplers, tokenizer, data_cfg.mlm_prob, data_cfg.nsp_weight, pair_task=spec.pair_task,
                               **phases)
    if objective == "electra":
        return ElectraTask(samplers, tokenizer, data_cfg.mlm_prob, rtd_weight=rtd_weight,
                           curriculum_iters=data_cfg.rtd_curriculum_iters, **phases)
    return MaskedLMTask(samplers, tokenizer, data_cfg.mlm_prob, **phases)
