"""Entity scores per type, side by side for several taggers (a model, an ensemble, a baseline).

The micro-averaged F1 of tagging_metrics.py hides which types a tagger finds: on tweets "person" is
common and easy, "tvshow" rare and hard. Per type X, only entities of type X count:

    precision_X = |gold_X ∩ predicted_X| / |predicted_X|      recall_X = |gold_X ∩ predicted_X| / |gold_X|

    type           gold |      model P / R / F1 |  memorised P / R / F1
    person           43 |    71.0 / 62.8 / 66.7 |    80.0 / 18.6 / 30.2
"""

from collections import Counter

from .tagging_metrics import bio_entities, entity_scores


def entity_scores_by_type(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, dict[str, float]]:
    """{type: {"gold", "precision", "recall", "f1"}} over all sentences, for every type in gold or predicted."""
    n_gold, n_predicted, n_correct = Counter(), Counter(), Counter()
    for gold_tags, pred_tags in zip(gold, predicted, strict=True):
        gold_entities, pred_entities = bio_entities(gold_tags), bio_entities(pred_tags)
        n_gold.update(kind for kind, _, _ in gold_entities)
        n_predicted.update(kind for kind, _, _ in pred_entities)
        n_correct.update(kind for kind, _, _ in gold_entities & pred_entities)
    scores = {}
    for kind in sorted(n_gold | n_predicted):
        precision = n_correct[kind] / n_predicted[kind] if n_predicted[kind] else 0.0
        recall = n_correct[kind] / n_gold[kind] if n_gold[kind] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[kind] = {"gold": n_gold[kind], "precision": precision, "recall": recall, "f1": f1}
    return scores


def format_entity_table(gold: list[list[str]], taggers: dict[str, list[list[str]]]) -> str:
    """A text table: one row per type (most gold entities first), then all types micro-averaged; per
    tagger ({name: predicted tags per sentence}) precision / recall / F1 in %."""
    by_type = {name: entity_scores_by_type(gold, predicted) for name, predicted in taggers.items()}
    gold_counts = Counter(kind for tags in gold for kind, _, _ in bio_entities(tags))
    kinds = sorted({kind for scores in by_type.values() for kind in scores}, key=lambda k: (-gold_counts[k], k))
    header = f"{'type':14s} {'gold':>5s}" + "".join(f" | {name + ' P / R / F1':>22s}" for name in taggers)
    rows = [header, "-" * len(header)]
    for kind in kinds:
        rows.append(f"{kind:14s} {gold_counts[kind]:5d}"
                    + "".join(f" | {_percentages(scores.get(kind)):>22s}" for scores in by_type.values()))
    overall = [entity_scores(gold, predicted) for predicted in taggers.values()]
    rows.append(f"{'all (micro)':14s} {sum(gold_counts.values()):5d}"
                + "".join(f" | {_percentages(scores):>22s}" for scores in overall))
    return "\n".join(rows)


def _percentages(scores: dict[str, float] | None) -> str:
    if scores is None:  # a type only another tagger predicted (it has no gold entity)
        return "-"
    return " / ".join(f"{100 * scores[name]:5.1f}" for name in ("precision", "recall", "f1"))


def entity_spans(tagged: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """[(word, tag), ...] -> [(the entity's words joined by spaces, its type), ...] in sentence order."""
    words = [word for word, _ in tagged]
    entities = sorted(bio_entities([tag for _, tag in tagged]), key=lambda entity: entity[1])
    return [(" ".join(words[start:end + 1]), kind) for kind, start, end in entities]
