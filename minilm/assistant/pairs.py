"""A user's own question/answer pairs for the knowledge store (knowledge.py): a .jsonl or a .csv file.

    pairs.jsonl   one JSON object a line: {"question": "...", "answer": "..."} (other keys are ignored)
    pairs.csv     a header row naming the columns question and answer (others ignored), then one pair a row

Every problem names the file and the line: a store built from half a file would answer from half a file.
"""

import csv
import json
from pathlib import Path

from common.errors import DataError, MissingFileError

from .knowledge import Pair

FIELDS = ("question", "answer")


def read_pairs(path) -> list[Pair]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"--pairs {path}: no such file; give a .jsonl of {{\"question\", \"answer\"}} "
                               "objects or a .csv with question and answer columns")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's byte-order mark is no column name
    except UnicodeDecodeError as err:
        raise DataError(f"--pairs {path}: not UTF-8 text ({err}); save it as UTF-8") from None
    if path.suffix == ".jsonl":
        pairs = _from_jsonl(path, text)
    elif path.suffix == ".csv":
        pairs = _from_csv(path, text)
    else:
        raise DataError(f"--pairs {path}: expected a .jsonl or .csv file, got {path.suffix or 'no extension'}")
    if not pairs:
        raise DataError(f"--pairs {path}: no question/answer pairs in it")
    return pairs


def _from_jsonl(path: Path, text: str) -> list[Pair]:
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise DataError(f"{path}:{number}: not valid JSON ({err})") from None
        pairs.append(_pair(path, number, record))
    return pairs


def _from_csv(path: Path, text: str) -> list[Pair]:
    reader = csv.DictReader(text.splitlines())
    missing = [name for name in FIELDS if name not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}:1: the header row needs the columns question and answer; missing "
                        f"{', '.join(missing)} (found: {', '.join(reader.fieldnames or []) or 'nothing'})")
    return [_pair(path, reader.line_num, row) for row in reader]


def _pair(path: Path, number: int, record) -> Pair:
    if not isinstance(record, dict):
        raise DataError(f"{path}:{number}: expected an object with \"question\" and \"answer\"")
    values = [record.get(name) for name in FIELDS]
    if not all(isinstance(value, str) and value.strip() for value in values):
        raise DataError(f"{path}:{number}: \"question\" and \"answer\" must both be non-empty text")
    return Pair(values[0].strip(), values[1].strip())
