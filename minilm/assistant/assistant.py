"""The assistant: find the nearest known question and give its answer; below a threshold, fall back.

    reply(question):
        intent   = the category a fine-tuned MiniLM puts the question in (if one is given): where a
                   customer-service desk would route it
        nearest  = the indexed question with the highest cosine similarity s (retrieval.py)
        s >= threshold  ->  the stored answer of nearest                       source "retrieved"
        s <  threshold  ->  a GPT's continuation of "Q: question\\nA:" if one  source "generated"
                            is given, else an honest "I don't know"            source "unknown"

The threshold is tuned on held-out questions (evaluation.py, `python -m minilm.assistant evaluate`):
reworded questions it should answer, questions of categories left out of the index it should not.
"""

from dataclasses import dataclass

import torch

UNKNOWN = "Sorry, I don't know the answer to that one."


@dataclass
class Reply:
    text: str
    source: str  # "retrieved", "generated" or "unknown"
    score: float  # the cosine similarity of the nearest known question
    matched: str  # that question
    intent: str | None = None


class Assistant:
    def __init__(self, index, questions, threshold: float, intent=None, fallback=None):
        """index: an EmbeddingIndex (or TfidfIndex) over the questions' texts; questions: data/chatterbot.py
        Questions, each with its answers; intent(text) -> (label, probability) or None; fallback(text) -> str
        or None."""
        self.index, self.questions, self.threshold = index, questions, threshold
        self.intent, self.fallback = intent, fallback

    def reply(self, text: str) -> Reply:
        [(position, score)] = self.index.search(text, k=1)
        nearest = self.questions[position]
        intent = self.intent(text)[0] if self.intent is not None else None
        if score >= self.threshold:
            return Reply(nearest.answers[0], "retrieved", score, nearest.text, intent)
        if self.fallback is not None:
            return Reply(self.fallback(text), "generated", score, nearest.text, intent)
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


class GPTFallback:
    """text -> a GPT's answer: the continuation of "Q: text\\nA:" up to the end of its line."""

    def __init__(self, gpt, tokenizer, max_new_tokens: int = 80, seed: int = 0):
        self.gpt, self.tokenizer, self.max_new_tokens, self.seed = gpt.eval(), tokenizer, max_new_tokens, seed

    @torch.no_grad()
    def __call__(self, text: str) -> str:
        prompt = torch.tensor([self.tokenizer.encode(f"Q: {text}\nA:")])  # (1, T); a long one is cropped
        generator = torch.Generator().manual_seed(self.seed)
        ids = []
        for token in self.gpt.generate_tokens(prompt, self.max_new_tokens, temperature=0.8, top_k=50,
                                              generator=generator):
            ids.append(int(token))
            if "\n" in self.tokenizer.decode(ids):  # the answer's line is complete
                break
        return self.tokenizer.decode(ids).split("\n")[0].strip() or "..."
