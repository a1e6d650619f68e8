"""Find the known question nearest to a new one: MiniLM embeddings, or TF-IDF words as the baseline.

Both indexes answer `search(query, k) -> [(position in the index, score), ...]`, best first.

    EmbeddingIndex   score = cosine of the sentence vectors (encoder.py): meaning, whatever the words
    TfidfIndex       score = cosine of TF-IDF word vectors: shared words, weighted by their rarity

TF-IDF, in the few lines below: a word w of a text gets weight tf(w) · idf(w), where tf is its count in
the text and idf(w) = ln((1 + N) / (1 + df(w))) + 1 (N indexed texts, df(w) of them contain w; the
+1s keep an unseen word finite), and the vector is made unit length. "my pc gets really hot" shares no
word with "My system is overheating.", so TF-IDF cannot find it; the embeddings can.
"""

import math
import re
from collections import Counter

import torch

WORD = re.compile(r"[a-z0-9]+")


class EmbeddingIndex:
    def __init__(self, encoder, texts: list[str]):
        self.encoder = encoder
        self.vectors = encoder.encode(texts)  # (N, C), unit length

    def search(self, query: str, k: int = 5) -> list[tuple[int, float]]:
        scores = self.vectors @ self.encoder.encode([query])[0]  # (N,) cosines
        top = scores.topk(min(k, len(scores)))
        return list(zip(top.indices.tolist(), top.values.tolist()))


def words_of(text: str) -> list[str]:
    return WORD.findall(text.lower())


class TfidfIndex:
    def __init__(self, texts: list[str]):
        counts = [Counter(words_of(text)) for text in texts]
        df = Counter(word for count in counts for word in count)
        self.idf = {word: math.log((1 + len(texts)) / (1 + n)) + 1 for word, n in df.items()}
        self.vectors = [self._vector(count) for count in counts]

    def _vector(self, count: Counter) -> dict[str, float]:
        weights = {word: n * self.idf.get(word, 0.0) for word, n in count.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {word: w / norm for word, w in weights.items()}

    def search(self, query: str, k: int = 5) -> list[tuple[int, float]]:
        q = self._vector(Counter(words_of(query)))
        scores = torch.tensor([sum(w * vector.get(word, 0.0) for word, w in q.items()) for vector in self.vectors])
        top = scores.topk(min(k, len(scores)))
        return list(zip(top.indices.tolist(), top.values.tolist()))
