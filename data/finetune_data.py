"""Fine-tuning data: read labelled files, map labels to ids, hold out a validation split.

Classification files (one example per row):
    .csv / .tsv   a header row naming the columns (text, label, optionally text_b), or no header and
                  the columns given by position ("0", "1", ...); quoted fields may hold newlines
    .jsonl        one JSON object per line: {"text": ..., "label": ..., "text_b": ...}
Tagging files (one sentence per example):
    CoNLL         one word per line, its tag in the last column, a blank line between sentences
                  (-DOCSTART- lines are skipped), so CoNLL-2003 files work as they are
    word/TAG      one sentence per line: "The/DT cat/NN sat/VBD ./."
Chat files (instruction tuning, one conversation per line):
    .jsonl        {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}

The held-out split does not depend on the file's order or on the training seed: each example is
ranked by the sha256 of its text and the lowest-ranked share goes to validation (duplicates land
on the same side, so no sentence is in both splits).
"""

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from common.errors import DataError


class FinetuneDataError(DataError):
    """A fine-tuning file that cannot be used: the message names the problem and the fix."""


@dataclass
class TextExample:
    text: str
    label: str
    text_b: str | None = None


@dataclass
class TaggedSentence:
    words: list[str]
    tags: list[str]


@dataclass
class ChatExample:
    messages: list[dict]  # [{"role": "system" | "user" | "assistant", "content": str}, ...]


CHAT_ROLES = ("system", "user", "assistant")


# ---------------------------------------------------------------------------------- chat

def read_chat_file(path) -> list[ChatExample]:
    """A .jsonl file of {"messages": [...]} lines, each message a {"role", "content"} of strings, roles from
    CHAT_ROLES, at least one of them the assistant's (what SFT learns)."""
    path = _existing_file(path)
    if path.suffix.lower() != ".jsonl":
        raise FinetuneDataError(f"{path}: chat data must be a .jsonl file, one {{\"messages\": [...]}} per line")
    examples = [ChatExample(_messages(row, path, number)) for number, row in _read_jsonl(path)]
    if not examples:
        raise FinetuneDataError(f"{path} holds no conversation; write one {{\"messages\": [...]}} per line")
    return examples


def _messages(row: dict, path: Path, number: int) -> list[dict]:
    where = f"{path}, line {number}"
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise FinetuneDataError(f'{where}: expected {{"messages": [{{"role": "user", "content": ...}}, ...]}}')
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in CHAT_ROLES \
                or not isinstance(message.get("content"), str):
            raise FinetuneDataError(f"{where}: {json.dumps(message)[:80]} is not a message; each is "
                                    f"{{\"role\": one of {', '.join(CHAT_ROLES)}, \"content\": a string}}")
    if not any(m["role"] == "assistant" for m in messages):
        raise FinetuneDataError(f"{where}: no assistant message, so there is no answer to learn")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


# ---------------------------------------------------------------------------------- classification

def read_classification_file(path, text_column: str = "text", label_column: str = "label",
                             text_b_column: str | None = None) -> list[TextExample]:
    """Examples from a .csv, .tsv or .jsonl file. Columns are names, or positions ("0", "1") for a
    CSV/TSV without a header row."""
    path = _existing_file(path)
    if path.suffix.lower() == ".jsonl":
        rows = _read_jsonl(path)
    elif path.suffix.lower() in (".csv", ".tsv"):
        rows = _read_delimited(path, delimiter="\t" if path.suffix.lower() == ".tsv" else ",",
                               by_position=all(c is None or c.isdigit()
                                               for c in (text_column, label_column, text_b_column)))
    else:
        raise FinetuneDataError(f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv or .jsonl")
    examples = []
    for number, row in rows:
        text = _column(row, text_column, path, number)
        label = _column(row, label_column, path, number)
        text_b = _column(row, text_b_column, path, number) if text_b_column is not None else None
        examples.append(TextExample(text=str(text), label=str(label).strip(),
                                    text_b=None if text_b is None else str(text_b)))
    if not examples:
        raise FinetuneDataError(f"{path} holds no examples; it needs one row per labelled text")
    return examples


def _read_delimited(path: Path, delimiter: str, by_position: bool):
    """(row number, row) pairs; a row is a dict by header name, or a list when by_position."""
    rows = list(csv.reader(io.StringIO(_read_utf8(path), newline=""), delimiter=delimiter))
    numbered = [(i + 1, row) for i, row in enumerate(rows) if any(cell.strip() for cell in row)]
    if by_position or not numbered:
        return numbered
    header = [name.strip() for name in numbered[0][1]]
    return [(number, dict(zip(header, row))) for number, row in numbered[1:]]


def _read_jsonl(path: Path):
    rows = []
    for number, line in enumerate(_read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise FinetuneDataError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise FinetuneDataError(f"{path}, line {number}: expected a JSON object like "
                                    '{"text": ..., "label": ...}')
        rows.append((number, row))
    return rows


def _column(row, column: str, path: Path, number: int):
    if isinstance(row, list):
        index = int(column)
        if index >= len(row):
            raise FinetuneDataError(f"{path}, row {number}: has {len(row)} column(s), no column {index}; "
                                    "check --text_column / --label_column")
        value = row[index]
    elif column not in row or row[column] is None:
        raise FinetuneDataError(f"{path}, row {number}: no {column!r} column (it has {sorted(row)}); name "
                                "the right one with --text_column / --label_column / --text_b_column, or "
                                "give positions (0, 1, ...) for a file without a header row")
    else:
        value = row[column]
    if not str(value).strip():  # a blank label would become a class named '', a blank text an empty input
        raise FinetuneDataError(f"{path}, row {number}: the {column!r} cell is blank; fill it in, or remove the row")
    return value


# ---------------------------------------------------------------------------------------- tagging

def read_tagging_file(path, tag_format: str = "auto") -> list[TaggedSentence]:
    """Sentences from a CoNLL file or a word/TAG file; tag_format "auto" looks at the first lines."""
    path = _existing_file(path)
    lines = _read_utf8(path).splitlines()
    if tag_format == "auto":
        tag_format = _guess_tag_format(lines)
    if tag_format == "conll":
        sentences = _read_conll(lines, path)
    elif tag_format == "slash":
        sentences = _read_slash(lines, path)
    else:
        raise FinetuneDataError(f"tag_format must be auto, conll or slash; got {tag_format!r}")
    if not sentences:
        raise FinetuneDataError(f"{path} holds no tagged sentences")
    return sentences


def _guess_tag_format(lines: list[str]) -> str:
    """word/TAG when every token of the first non-blank lines has a slash in it, else CoNLL."""
    sample = [line.split() for line in lines if line.strip()][:20]
    slashed = all("/" in token[1:] for tokens in sample for token in tokens)
    return "slash" if sample and slashed else "conll"


def _read_conll(lines: list[str], path: Path) -> list[TaggedSentence]:
    sentences, words, tags = [], [], []
    for number, line in enumerate(lines + [""], start=1):  # the extra blank line closes the last sentence
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if words:
                sentences.append(TaggedSentence(words, tags))
            words, tags = [], []
            continue
        if len(columns) < 2:
            raise FinetuneDataError(f"{path}, line {number}: {line.strip()!r} has no tag; a CoNLL line is "
                                    "'word ... TAG' (word first, tag last)")
        words.append(columns[0])
        tags.append(columns[-1])
    return sentences


def _read_slash(lines: list[str], path: Path) -> list[TaggedSentence]:
    sentences = []
    for number, line in enumerate(lines, start=1):
        words, tags = [], []
        for token in line.split():
            word, slash, tag = token.rpartition("/")  # the last slash: "1/2/CD" is the word "1/2"
            if not slash or not word or not tag:
                raise FinetuneDataError(f"{path}, line {number}: token {token!r} is not word/TAG")
            words.append(word)
            tags.append(tag)
        if words:
            sentences.append(TaggedSentence(words, tags))
    return sentences


# ------------------------------------------------------------------------------- labels and splits

class LabelMap:
    """Label strings <-> ids 0..n-1, in sorted order so the same labels always get the same ids."""

    def __init__(self, labels: list[str]):
        if len(set(labels)) != len(labels):
            raise FinetuneDataError(f"labels must be distinct, got {labels}")
        self.labels = list(labels)
        self.ids = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def from_labels(cls, labels) -> "LabelMap":
        found = sorted(set(labels))
        if len(found) < 2:
            raise FinetuneDataError(f"the training data has {len(found)} distinct label(s) {found}; "
                                    "a classifier needs at least two")
        return cls(found)

    def __len__(self) -> int:
        return len(self.labels)

    def id(self, label: str, where: str = "") -> int:
        if label not in self.ids:
            raise FinetuneDataError(f"{where}label {label!r} was not in the training data, whose labels are "
                                    f"{self.labels}; fix the label, or add examples of it to the training file")
        return self.ids[label]


def example_key(example) -> str:
    """The text an example is identified by for the held-out split."""
    if isinstance(example, TaggedSentence):
        return " ".join(example.words)
    if isinstance(example, ChatExample):
        return json.dumps(example.messages)
    return example.text if example.text_b is None else example.text + "\n" + example.text_b


def subsample(examples: list, n: int) -> list:
    """n examples, the same ones every run, spread over the whole file (a file sorted by label keeps
    its mix): those with the smallest sha256("sample" + text), in file order."""
    if n >= len(examples):
        return examples
    ranks = [hashlib.sha256(b"sample\0" + example_key(e).encode("utf-8")).hexdigest() for e in examples]
    keep = set(sorted(range(len(examples)), key=lambda i: ranks[i])[:n])
    return [e for i, e in enumerate(examples) if i in keep]


def held_out_split(examples: list, val_fraction: float) -> tuple[list, list]:
    """(train, val): the val_fraction of examples with the smallest sha256(text) are held out,
    each side kept in file order."""
    if not 0.0 < val_fraction < 1.0:
        raise FinetuneDataError(f"val_fraction={val_fraction}: must be strictly between 0 and 1, e.g. 0.1")
    digests = [hashlib.sha256(example_key(e).encode("utf-8")).hexdigest() for e in examples]
    order = sorted(range(len(examples)), key=lambda i: digests[i])
    n_val = round(len(examples) * val_fraction)
    if n_val == 0 or n_val == len(examples):
        raise FinetuneDataError(f"{len(examples)} example(s) cannot be split with val_fraction={val_fraction}: "
                                "one side would be empty; add examples or pass a --val_data file")
    val_digests = {digests[i] for i in order[:n_val]}
    train = [e for e, d in zip(examples, digests) if d not in val_digests]
    val = [e for e, d in zip(examples, digests) if d in val_digests]
    if not train:
        raise FinetuneDataError("every example has the same text, so all of them were held out; "
                                "add different examples or pass a --val_data file")
    return train, val


def _read_utf8(path: Path) -> str:
    """The file's text, read as UTF-8 (a leading BOM dropped: utf-8-sig), or an error that says how to convert it."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise FinetuneDataError(f"{path}, line {line}: not UTF-8 text (byte 0x{data[err.start]:02x}); save the file "
                                "as UTF-8, e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8") from None


def _existing_file(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FinetuneDataError(f"{path}: no such file; pass the path of your data file")
    return path
