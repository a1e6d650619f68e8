"""The assistant: find the nearest known question and give its answer; below a threshold, decline.

    reply(question):
        intent   = the category a fine-tuned MiniLM puts the question in (if one is given): where a
                   customer-service desk would route it
        nearest  = the indexed question with the highest cosine similarity s (retrieval.py)
        s >= threshold  ->  the stored answer of nearest                       source "retrieved"
        s <  threshold  ->  an honest "I don't know"                           source "unknown"

rag.py answers above the threshold with a chat model writing from the nearest stored pairs; below it, it
declines just as here (a generated guess where nothing stored applies was the old --fallback, which RAG
replaced: docs/applications.md says why).

The threshold is tuned on held-out questions (evaluation.py, `python -m minilm.assistant evaluate`):
reworded questions it should answer, questions of categories left out of the index it should not.
"""

from dataclasses import dataclass

import torch

UNKNOWN = "Sorry, I don't know the answer to that one."
THRESHOLD = 0.55  # tuned for minilm-l6 by `python -m minilm.assistant evaluate` on the validation half


@dataclass
class Reply:
    text: str
    source: str  # "retrieved" or "unknown"
    score: float  # the cosine similarity of the nearest known question
    matched: str  # that question
    intent: str | None = None


class Assistant:
    def __init__(self, index, questions, threshold: float, intent=None):
        """index: an EmbeddingIndex (or TfidfIndex) over the questions' texts; questions: data/chatterbot.py
        Questions, each with its answers; intent(text) -> (label, probability) or None."""
        self.index, self.questions, self.threshold, self.intent = index, questions, threshold, intent

    def reply(self, text: str) -> Reply:
        [(position, score)] = self.index.search(text, k=1)
        nearest = self.questions[position]
        intent = self.intent(text)[0] if self.intent is not None else None
        if score >= self.threshold:
            return Reply(nearest.answers[0], "retrieved", score, nearest.text, intent)
        return Reply(UNKNOWN, "unknown", score, nearest.text, intent)


class IntentClassifier:
    """text -> (category, probability) with a finetune.py classify checkpoint on a BERT (e.g. --recipe intent-minilm)."""

    def __init__(self, model, tokenizer, labels: list[str], max_length: int = 64):
        self.model, self.tokenizer, self.labels, self.max_length = model.eval(), tokenizer, labels, max_length

    @torch.no_grad()
    def __call__(self, text: str) -> tuple[str, float]:
        inputs = self.tokenizer.encode_plus(text, max_length=self.max_length, truncation=True)
        logits, _ = self.model(torch.tensor([inputs["input_ids"]]), token_type_ids=torch.tensor([inputs["token_type_ids"]]))
        probs = logits[0].softmax(dim=-1)  # (num_labels,)
        return self.labels[int(probs.argmax())], float(probs.max())
