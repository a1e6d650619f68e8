"""How well the assistant answers questions it has never seen (data/chatterbot_paraphrases.py has the set).

    top-k       the share of reworded questions for which one of the k nearest indexed questions has an
                answer of the question that was reworded (two corpus questions may share answers)
    threshold   answer when the best score s >= t, else fall back. Chosen on the validation half to
                maximise the balanced accuracy  ½ · (share of answerable questions answered
                                                     + share of unanswerable ones declined),
                so that answerable and unanswerable questions count alike however many there are of each
    right       on the test half: answered with a right answer, or (unanswerable) declined
"""


def answers_the_question(found, target) -> bool:
    """found, target: Questions (data/chatterbot.py); right when found gives one of target's answers."""
    return found.text == target.text or bool(set(found.answers) & set(target.answers))


def balanced_accuracy(threshold: float, answerable: list[float], unanswerable: list[float]) -> float:
    answered = sum(s >= threshold for s in answerable) / len(answerable)
    declined = sum(s < threshold for s in unanswerable) / len(unanswerable)
    return 0.5 * (answered + declined)


def tune_threshold(answerable: list[float], unanswerable: list[float]) -> float:
    """The threshold with the best balanced accuracy, half-way between two neighbouring scores."""
    scores = sorted(set(answerable) | set(unanswerable))
    candidates = [(a + b) / 2 for a, b in zip(scores, scores[1:])] or scores
    return max(candidates, key=lambda t: balanced_accuracy(t, answerable, unanswerable))


def retrieval_report(index, questions, queries, unanswerable: list[str]) -> dict[str, float]:
    """index over questions; queries: (reworded text, the Question it rewords); unanswerable: texts with no
    answer in the index. Even positions are the validation half, odd ones the test half."""
    found = [index.search(text, k=5) for text, _ in queries]  # [(position, score), ...] per query
    top1 = [answers_the_question(questions[hits[0][0]], target) for hits, (_, target) in zip(found, queries)]
    top5 = [any(answers_the_question(questions[p], target) for p, _ in hits) for hits, (_, target) in zip(found, queries)]
    answerable = [hits[0][1] for hits in found]
    declined = [index.search(text, k=1)[0][1] for text in unanswerable]
    threshold = tune_threshold(answerable[0::2], declined[0::2])
    right = [s >= threshold and ok for s, ok in zip(answerable[1::2], top1[1::2])] + [s < threshold for s in declined[1::2]]
    return {"top1": sum(top1) / len(top1), "top5": sum(top5) / len(top5), "threshold": threshold,
            "test_balanced": balanced_accuracy(threshold, answerable[1::2], declined[1::2]),
            "test_right": sum(right) / len(right)}


class AnswerJudge:
    """Is a written answer the right one? Its MiniLM vector's nearest among every stored answer must be one of the
    target question's answers. A generated answer rarely repeats a stored one word for word; this asks which
    stored answer it says, as the retriever asks which stored question a new one asks.

        right(text, target)  <=>  argmax_a cos(e(text), e(a)) over all answers a  is in target.answers

    A stored answer given back verbatim finds itself at cosine 1, so for retrieval alone the judge agrees with
    answers_the_question; what it cannot tell apart are answers that say the same (see docs/applications.md for
    20 judgements checked by hand)."""

    def __init__(self, encoder, questions):
        self.encoder = encoder
        self.answers = sorted({answer for question in questions for answer in question.answers})
        self.vectors = encoder.encode(self.answers)  # (A, C) unit vectors

    def nearest(self, text: str) -> tuple[str, float]:
        scores = self.vectors @ self.encoder.encode([text])[0]  # (A,)
        best = int(scores.argmax())
        return self.answers[best], float(scores[best])

    def right(self, text: str, target) -> bool:
        return self.nearest(text)[0] in target.answers
