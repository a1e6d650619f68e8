"""The store of question/answer pairs retrieval-augmented answers read from: a folder a command writes once
(`python -m minilm.assistant index --out FOLDER`) and the assistant and the service load.

    FOLDER/vectors.safetensors   "vectors" (N, C): each stored question's unit vector (encoder.py)
                                 "probe"   (C,):   the vector of PROBE, made by the encoder that built the store
    FOLDER/pairs.json            {"format", "version", "encoder": {"name", "dim"}, "threshold", "pairs": [{"question",
                                 "answer"}, ...]}: the texts, in the order of the vectors' rows
    FOLDER/written_by.json       the output guard's marker (common/output_guard.py): building again needs no flag

Vectors from two encoders do not compare: a question embedded by one model and a store built by another give
cosines that mean nothing, and nothing would say so. So the store keeps the vector its encoder gave one fixed
sentence, PROBE; whoever loads it encodes PROBE again, and a different vector means a different encoder: a clear
error, not silently wrong answers. The name alone would not do: "minilm-l6" and a fine-tuned copy of it share it.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from common.atomic import replace_folder_atomic
from common.errors import CheckpointError, MissingFileError
from common.output_guard import mark_output

FORMAT, VERSION = "minilm-knowledge", 1
VECTORS, PAIRS = "vectors.safetensors", "pairs.json"
PROBE = "Where can I find the answer to my question?"  # any fixed sentence: its vector tells encoders apart
SAME_ENCODER = 0.999  # the probe's cosine with its stored vector; the same weights give 1 up to rounding
INDEX_COMMAND = "python -m minilm.assistant index"


@dataclass
class Pair:
    question: str
    answer: str


@dataclass
class Hit:
    position: int  # the pair's row in the store
    pair: Pair
    score: float  # cosine of the query's and the stored question's vectors


class Knowledge:
    """The stored pairs and their questions' vectors; search(encoder, text, k) -> the k nearest, best first."""

    def __init__(self, pairs: list[Pair], vectors: torch.Tensor, probe: torch.Tensor, encoder_name: str,
                 threshold: float):
        self.pairs, self.vectors, self.probe = pairs, vectors, probe  # vectors (N, C), probe (C,)
        self.encoder_name, self.threshold = encoder_name, threshold

    @classmethod
    def build(cls, encoder, encoder_name: str, pairs: list[Pair], threshold: float) -> "Knowledge":
        """Embed every pair's question (and PROBE) with encoder; encoder_name says which model it was."""
        if not pairs:
            raise CheckpointError("no question/answer pairs to store: give a file that holds at least one")
        vectors = encoder.encode([pair.question for pair in pairs])  # (N, C)
        return cls(pairs, vectors, encoder.encode([PROBE])[0], encoder_name, threshold)

    def check_encoder(self, encoder, where: str = "the knowledge store") -> None:
        """A UserError unless encoder is the one that built the store (the probe's vector, see above)."""
        probe = encoder.encode([PROBE])[0]  # (C,)
        if probe.shape != self.probe.shape or float(probe @ self.probe) < SAME_ENCODER:
            raise CheckpointError(f"{where} was built with the encoder {self.encoder_name} ({self.probe.numel()}-d "
                                  f"vectors), and the encoder given now embeds differently ({probe.numel()}-d); "
                                  f"use {self.encoder_name}, or build the store again with this encoder "
                                  f"({INDEX_COMMAND} --base ENCODER --out FOLDER)")

    def search(self, encoder, text: str, k: int) -> list[Hit]:
        scores = self.vectors @ encoder.encode([text])[0]  # (N,) cosines: the vectors are unit length
        top = scores.topk(min(k, len(scores)))
        return [Hit(p, self.pairs[p], s) for p, s in zip(top.indices.tolist(), top.values.tolist())]

    def save(self, folder) -> Path:
        """The whole folder at once (common/atomic.py): a reader sees the old store or the new one."""
        meta = {"format": FORMAT, "version": VERSION, "encoder": {"name": self.encoder_name, "dim": self.probe.numel()},
                "threshold": self.threshold,
                "pairs": [{"question": p.question, "answer": p.answer} for p in self.pairs]}

        def write(tmp: Path) -> None:  # tmp: an empty folder beside the target
            save_file({"vectors": self.vectors.float().contiguous(), "probe": self.probe.float().contiguous()},
                      tmp / VECTORS, metadata={"format": FORMAT})
            (tmp / PAIRS).write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            mark_output(tmp, INDEX_COMMAND)

        return replace_folder_atomic(folder, write)


def load_knowledge(folder) -> Knowledge:
    """The store in folder, every part checked: a missing, foreign or damaged file is a UserError naming it."""
    folder = Path(folder)
    rebuild = f"build it again with {INDEX_COMMAND} --out {folder}"
    if not folder.is_dir():
        raise MissingFileError(f"{folder}: no knowledge store there (a folder {INDEX_COMMAND} writes); {rebuild}")
    for name in (VECTORS, PAIRS):
        if not (folder / name).is_file():
            raise MissingFileError(f"{folder}: no {name}, so it is not a knowledge store; {rebuild}")
    meta = _read_meta(folder / PAIRS, rebuild)
    try:
        tensors = load_file(folder / VECTORS)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{folder / VECTORS}: not a readable safetensors file ({err}); {rebuild}") from None
    vectors, probe = tensors.get("vectors"), tensors.get("probe")
    n, dim = len(meta["pairs"]), meta["encoder"]["dim"]
    if vectors is None or probe is None or vectors.shape != (n, dim) or probe.shape != (dim,):
        raise CheckpointError(f"{folder / VECTORS}: expected vectors ({n}, {dim}) and probe ({dim},) to match "
                              f"{PAIRS}; got {_shape(vectors)} and {_shape(probe)}; {rebuild}")
    pairs = [Pair(p["question"], p["answer"]) for p in meta["pairs"]]
    return Knowledge(pairs, vectors.float(), probe.float(), meta["encoder"]["name"], float(meta["threshold"]))


def _read_meta(path: Path, rebuild: str) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err}); {rebuild}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a minilm knowledge store (no \"format\": \"{FORMAT}\"); {rebuild}")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: version {meta.get('version')!r}, this minilm reads version {VERSION}; "
                              f"{rebuild}")
    encoder, pairs = meta.get("encoder"), meta.get("pairs")
    well_formed = (isinstance(encoder, dict) and isinstance(encoder.get("name"), str)
                   and isinstance(encoder.get("dim"), int) and isinstance(meta.get("threshold"), (int, float))
                   and isinstance(pairs, list) and pairs
                   and all(isinstance(p, dict) and all(isinstance(p.get(key), str) for key in ("question", "answer"))
                           for p in pairs))
    if not well_formed:
        raise CheckpointError(f"{path}: needs \"encoder\": {{\"name\", \"dim\"}}, a \"threshold\" and a non-empty "
                              f"\"pairs\" list of {{\"question\", \"answer\"}} strings; {rebuild}")
    return meta


def _shape(tensor) -> str:
    return "nothing" if tensor is None else str(tuple(tensor.shape))
