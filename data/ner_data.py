"""Named-entity files: the BIO check, and the memorising baseline a tagger has to beat.

A named-entity file is a tagging file (data/finetune_data.py reads it) whose tags are BIO (IOB2):

    Empire    B-facility      B-X  the first word of an entity of type X
    State     I-facility      I-X  a word inside it
    Building  I-facility
    =         O               O    outside every entity

`check_bio_tags` runs when a tag set looks like BIO (some tag starts with B- or I-): every tag must
then be O, B-X or I-X, or the entity metric (minilm/finetune/tagging_metrics.py) would silently drop
the others; the first tag that is not is an error naming its file and line. An I-X that continues no
X ("O I-person") is legal: the metric reads it as the start of an entity, as CoNLL's conlleval does,
and the check says how many there are.

`memorised_tags` is the baseline: it tags a word sequence only where it repeats an entity span seen in
training (the longest one, left to right), with the type that span had most often. Whatever a model
scores above it, it did not get by remembering names.
"""

from collections import Counter
from pathlib import Path

from .finetune_data import FinetuneDataError, TaggedSentence

OUTSIDE = "O"


def looks_like_bio(tags) -> bool:
    return any(tag.startswith(("B-", "I-")) for tag in tags)


def is_bio_tag(tag: str) -> bool:
    return tag == OUTSIDE or (tag[:2] in ("B-", "I-") and len(tag) > 2)


def check_bio_tags(path, sentences: list[TaggedSentence], tag_format: str = "conll") -> str | None:
    """Raise on the first tag that is not O / B-X / I-X, when the tag set looks like BIO at all (a
    part-of-speech file passes untouched). Returns a note about I- tags that continue no entity, or None."""
    tags = {tag for sentence in sentences for tag in sentence.tags}
    if not looks_like_bio(tags):
        return None
    bad = sorted(tag for tag in tags if not is_bio_tag(tag))
    if bad:
        line = _line_of_tag(Path(path), bad[0], tag_format)
        raise FinetuneDataError(f"{path}, line {line}: tag {bad[0]!r} is not BIO (O, B-<type> or I-<type>), "
                                f"but other tags are{_others(bad)}; the entity metric reads only BIO tags: "
                                "retag the file (IOB2: each entity starts with B-)")
    orphans = sum(_orphan_count(sentence.tags) for sentence in sentences)
    if not orphans:
        return None
    return (f"note: {path}: {orphans} I- tag(s) continue no entity of their type (e.g. O I-person); the entity "
            "metric counts each as the start of a new entity, as CoNLL's conlleval does")


def _others(bad: list[str]) -> str:
    return f" ({len(bad)} such tags: {', '.join(bad[:5])})" if len(bad) > 1 else ""


def _orphan_count(tags: list[str]) -> int:
    previous, count = OUTSIDE, 0
    for tag in tags:
        count += tag.startswith("I-") and previous[2:] != tag[2:]
        previous = tag
    return count


def _line_of_tag(path: Path, tag: str, tag_format: str) -> int | str:
    """The first line of the file that carries tag (CoNLL: the last column; word/TAG: after a slash)."""
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        columns = line.split()
        if tag_format == "slash" and any(token.rpartition("/")[2] == tag for token in columns):
            return number
        if tag_format != "slash" and columns and columns[-1] == tag:
            return number
    return "?"


# ------------------------------------------------------------------------------ the memorising baseline

def memorise_spans(sentences: list[TaggedSentence]) -> dict[tuple[str, ...], str]:
    """Every entity span of the training sentences -> the type it carried most often."""
    counts: dict[tuple[str, ...], Counter] = {}
    for sentence in sentences:
        kind, start = None, 0
        for position, tag in enumerate(sentence.tags + [OUTSIDE]):  # the extra O closes a last entity
            if kind is not None and tag != f"I-{kind}":
                counts.setdefault(tuple(sentence.words[start:position]), Counter())[kind] += 1
                kind = None
            if tag.startswith("B-") or (tag.startswith("I-") and kind is None):
                kind, start = tag[2:], position
    return {span: counter.most_common(1)[0][0] for span, counter in counts.items()}


def memorised_tags(spans: dict[tuple[str, ...], str], words: list[str]) -> list[str]:
    """BIO tags for words: at each position the longest memorised span that starts there, else O."""
    longest = max((len(span) for span in spans), default=0)
    tags, position = [], 0
    while position < len(words):
        for length in range(min(longest, len(words) - position), 0, -1):
            kind = spans.get(tuple(words[position:position + length]))
            if kind is not None:
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (length - 1)
                position += length
                break
        else:
            tags.append(OUTSIDE)
            position += 1
    return tags


def memorised_baseline(train: list[TaggedSentence], val: list[TaggedSentence], gold: list[list[str]]) -> list[list[str]]:
    """The baseline's tags for each validation sentence, cut to the words the model was scored on (gold)."""
    spans = memorise_spans(train)
    return [memorised_tags(spans, sentence.words[:len(tags)]) for sentence, tags in zip(val, gold, strict=True)]
