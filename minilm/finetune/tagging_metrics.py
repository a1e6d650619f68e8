"""Scores for token tagging: token accuracy, and entity-level precision / recall / F1 for BIO tags.

Token accuracy counts words whose tag is right. It flatters entity tagging, where most words are O:
a tagger that finds "New York" as B-LOC O gets one word of two right but the entity wrong. So for
BIO (IOB2) tag sets the entities themselves are compared (docs/finetuning.md):

    entity   = (type, first word, last word), read off the tags by `bio_entities`
    precision = |gold ∩ predicted| / |predicted|      of the entities found, how many are real
    recall    = |gold ∩ predicted| / |gold|           of the real entities, how many were found
    F1        = 2 · precision · recall / (precision + recall)

An entity counts only if its type and both of its ends match exactly. An I-X that does not continue
an entity of type X (after O, after another type, or at the start) opens a new entity, as the
CoNLL evaluation script reads it.
"""

OUTSIDE = "O"


def is_bio_tagset(tags) -> bool:
    """True when every tag is O, B-<type> or I-<type>, and at least one is B- or I-."""
    tags = set(tags)
    entity_tags = [t for t in tags if t != OUTSIDE]
    return bool(entity_tags) and all(t[:2] in ("B-", "I-") and len(t) > 2 for t in entity_tags)


def bio_entities(tags: list[str]) -> set[tuple[str, int, int]]:
    """The entities in one sentence's tags: {(type, start, end)}, end inclusive.

    ["B-PER", "I-PER", "O", "I-LOC"] -> {("PER", 0, 1), ("LOC", 3, 3)}
    """
    entities = set()
    kind, start = None, None  # the entity being read, if any
    for position, tag in enumerate(tags):
        prefix, tag_type = (tag[:2], tag[2:]) if tag != OUTSIDE else ("O", None)
        continues = prefix == "I-" and tag_type == kind
        if kind is not None and not continues:
            entities.add((kind, start, position - 1))  # the open entity ends before this word
            kind = None
        if prefix in ("B-", "I-") and not continues:
            kind, start = tag_type, position  # B-X, or an I-X with no X before it, opens an entity
    if kind is not None:
        entities.add((kind, start, len(tags) - 1))
    return entities


def token_accuracy(gold: list[list[str]], predicted: list[list[str]]) -> float:
    """Share of words, over all sentences, whose predicted tag equals the gold tag."""
    _check_aligned(gold, predicted)
    total = sum(len(sentence) for sentence in gold)
    if total == 0:
        raise ValueError("token_accuracy needs at least one tagged word")
    correct = sum(g == p for gold_tags, pred_tags in zip(gold, predicted) for g, p in zip(gold_tags, pred_tags))
    return correct / total


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """Entity-level precision, recall and F1 over all sentences (micro-averaged: counts are summed).

    With no predicted entities precision is 0; with no gold entities recall is 0 (nothing to find).
    """
    _check_aligned(gold, predicted)
    n_gold = n_predicted = n_correct = 0
    for gold_tags, pred_tags in zip(gold, predicted):
        gold_entities, pred_entities = bio_entities(gold_tags), bio_entities(pred_tags)
        n_gold += len(gold_entities)
        n_predicted += len(pred_entities)
        n_correct += len(gold_entities & pred_entities)
    precision = n_correct / n_predicted if n_predicted else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _check_aligned(gold, predicted) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted; they must pair up")
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted; one tag per word")
