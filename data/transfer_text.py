"""Unlabelled sentences for distillation's transfer set (finetune.py --transfer_data, docs/distillation.md).

The teacher labels these sentences itself (its probabilities are the student's targets), so a file's
labels, if it has any, are never read. What counts as one sentence:

    .txt                  each non-blank line
    .csv / .tsv / .jsonl  each non-blank line of the --text_column field of each row (a field may hold a
                          whole review, one sentence a line, as the sentiment-pang-lee-reviews asset does)

The same sentence twice is kept once; --transfer_examples N keeps a fixed sample of N.
"""

from pathlib import Path

from minilm.finetune.encode import encode_text

from .finetune_data import FinetuneDataError, TextExample, read_classification_file, subsample


def read_transfer_texts(path, text_column: str = "text", max_texts: int = 0) -> list[str]:
    """The distinct sentences of a transfer file, in file order (a fixed sample of max_texts when > 0)."""
    path = Path(path)
    if not path.is_file():
        raise FinetuneDataError(f"--transfer_data {path}: no such file; pass a file of unlabelled sentences "
                                "(.txt one a line, or .csv/.tsv/.jsonl with the text in --text_column)")
    if path.suffix.lower() == ".txt":
        fields = path.read_text(encoding="utf-8-sig").splitlines()
    else:  # read as classification rows whose "label" is the text column itself: no label is ever read
        fields = [row.text for row in read_classification_file(path, text_column, label_column=text_column)]
    lines = (line.strip() for field in fields for line in field.splitlines())
    texts = list(dict.fromkeys(line for line in lines if line))  # distinct, in order
    if not texts:
        raise FinetuneDataError(f"--transfer_data {path} holds no sentences; it needs one unlabelled text a line")
    if max_texts:
        texts = [e.text for e in subsample([TextExample(text, "") for text in texts], max_texts)]
    return texts


def encode_transfer_set(path, text_column: str, max_texts: int, tokenizer, family: str,
                        max_length: int) -> list[dict]:
    """The transfer sentences as model inputs (input_ids, token_type_ids), cut to max_length; no labels."""
    texts = read_transfer_texts(path, text_column, max_texts)
    return [encode_text(tokenizer, family, text, None, max_length) for text in texts]
