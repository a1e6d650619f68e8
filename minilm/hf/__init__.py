"""Hugging Face folders in and out, through one name table (docs/hf_weights.md): GPT-2, Llama, BERT,
DistilBERT, RoBERTa, ALBERT and ELECTRA.

    rows.py     a row of the table: Hugging Face name, minilm name, how (copy, transpose, split, tied)
    table_gpt_bert.py, table_successors.py, table_llama.py   the rows, by family
    families.py which family and transformers class a minilm model is; which minilm class a folder becomes
    names.py    NAME_TABLE: the rows joined, expanded for one model, read in both directions
    configs.py  config.json <-> GPTConfig / BertConfig (configs_llama.py: <-> LlamaConfig)
    load.py     from_pretrained: a folder -> a GPT, Llama, Bert, BertForMaskedLM, BertForPreTraining,
                ElectraDiscriminator
    save.py     save_pretrained: a model -> a folder transformers loads
    export.py   `python -m minilm.hf.export CKPT OUT`: a train_gpt.py / train_bert.py checkpoint, model and
                tokenizer, as a folder transformers loads (a command: it reads minilm's own checkpoints)
"""

from .configs import config_from_hf, config_to_hf
from .load import from_pretrained, load_hf_state_dict, read_config, read_weights
from .names import NAME_TABLE, format_table, to_hf_state_dict
from .save import save_pretrained

__all__ = ["NAME_TABLE", "config_from_hf", "config_to_hf", "format_table", "from_pretrained", "load_hf_state_dict",
           "read_config", "read_weights", "save_pretrained", "to_hf_state_dict"]
