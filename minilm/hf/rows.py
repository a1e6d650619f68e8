"""One row of the name table: which tensor of a Hugging Face file is which tensor of minilm, and how.

The rows themselves are in table_gpt_bert.py (GPT-2, BERT, DistilBERT), table_successors.py (RoBERTa,
ALBERT, ELECTRA) and table_llama.py (Llama); names.py joins them into NAME_TABLE and expands them for one model.
"""

from dataclasses import dataclass

COPY = "copy"
TRANSPOSE = "transposed (Conv1D)"
SPLIT = "split in 3 (q, k, v)"
SPLIT_TRANSPOSE = "split in 3, transposed (Conv1D)"
TIED = "tied"
TIED_IF_CONFIG = "tied if tie_word_embeddings"  # Llama's head: tied or a matrix of its own, as the config says


@dataclass(frozen=True)
class Row:
    model: str  # which rows these are: "GPT", "Embeddings", "Bert", "BertForPreTraining" (its heads), ...;
    #             families.py says which of them each Hugging Face class is made of
    hf: str  # name in a Hugging Face file, without the "transformer." / "bert." prefix; {i}: the layer
    minilm: str  # name in minilm's state_dict; {q,k,v}: one tensor split into three
    how: str
    tied_to: str = ""  # for TIED rows: the Hugging Face name of the embedding this weight shares

    def describe_how(self) -> str:
        if self.how == TIED_IF_CONFIG:
            return f"tied to {self.tied_to} when tie_word_embeddings (may be absent from the file), else copy"
        return f"tied to {self.tied_to} (may be absent from the file)" if self.how == TIED else self.how


def rows(model: str, *fields) -> list[Row]:
    """The rows of one part: each entry is (hf, minilm, how) or (hf, minilm, TIED, tied_to)."""
    return [Row(model, *entry) for entry in fields]
