"""EDA-style data augmentation (Wei & Zou 2019), with synonyms from the model's own word embeddings.

Each augmented copy of a training example applies one of four operations, chosen at random, to
n = max(1, round(p · words)) of its words:

    synonym   replace n content words, each by one of its nearest neighbours (below)
    insert    n times, insert a neighbour of a random content word at a random place
    swap      n times, swap two random words
    delete    drop each word with probability p (at least one word is kept)

EDA draws synonyms from WordNet, a download. Here they come from the table the model already has:
the rows of its word-embedding matrix E (vocab, C). The neighbours of word w are the whole-word
pieces v ≠ w with the largest cosine similarity  E[v]·E[w] / (‖E[v]‖ ‖E[w]‖). They are words used
in the same places, which includes antonyms ("good" ~ "bad"), the known weakness of distributional
synonyms. A word that is not a single piece of the vocabulary has no neighbours and is left alone.

Tagged sentences keep their labels aligned: only words tagged O are replaced, swapped or deleted, and
insertions (tagged O) never land inside an entity. Back-translation, the other classic augmentation,
needs a translation model, and none is available offline (no model hub): it is not here.
"""

import random
from dataclasses import dataclass, field

import torch

from common.errors import ConfigError

from .finetune_data import TaggedSentence, TextExample

OPERATIONS = ("synonym", "insert", "swap", "delete")
# Function words carry no meaning of their own to keep: EDA leaves them out of synonyms and insertions.
STOP_WORDS = frozenset("""a an the and or but if then so than as of at by for from in into on onto to with
without about over under again further once here there when where why how all any both each few more most
other some such no nor not only own same too very can will just should now i me my we our you your he him
his she her it its they them their what which who whom this that these those am is are was were be been
being have has had having do does did doing would could 's 't""".split())


@dataclass
class AugmentConfig:
    augment_copies: int = field(default=0, metadata={"help": "add N augmented copies of each training example "
                                "(EDA: synonym, insert, swap, delete; 0: off)"})
    augment_p: float = field(default=0.1, metadata={"help": "the share of each example's words an "
                             "augmentation changes (EDA's alpha), in [0, 1]"})
    augment_ops: str = field(default="synonym,insert,swap,delete", metadata={"help": "the operations to "
                             "draw from, comma-separated"})
    synonym_neighbours: int = field(default=5, metadata={"help": "a synonym is one of the N nearest words in "
                                    "the model's word-embedding table"})

    def __post_init__(self):
        if not 0.0 <= self.augment_p <= 1.0:  # also catches nan
            raise ConfigError(f"--augment_p must be in [0, 1] (a share of the words), got {self.augment_p}")
        if self.augment_copies < 0 or self.synonym_neighbours < 1:
            raise ConfigError(f"--augment_copies must be >= 0 and --synonym_neighbours >= 1; got "
                              f"{self.augment_copies} and {self.synonym_neighbours}")
        unknown = sorted(set(self.operations) - set(OPERATIONS))
        if unknown or not self.operations:
            raise ConfigError(f"--augment_ops {self.augment_ops!r}: choose from {', '.join(OPERATIONS)}")

    @property
    def operations(self) -> list[str]:
        return [op.strip() for op in self.augment_ops.split(",") if op.strip()]


class EmbeddingNeighbours:
    """word -> its nearest whole words by cosine similarity of their rows in the word-embedding table."""

    def __init__(self, vocab: list[str], weight: torch.Tensor, k: int):
        """vocab: the tokenizer's pieces in id order; weight: the embedding table (vocab, C)."""
        self.ids = {piece: i for i, piece in enumerate(vocab)}
        candidates = [i for i, piece in enumerate(vocab) if piece.isalpha() and piece not in STOP_WORDS]
        self.candidates = torch.tensor(candidates)
        self.vocab, self.k, self.cache = vocab, k, {}
        unit = torch.nn.functional.normalize(weight.detach().float(), dim=1)  # (vocab, C), rows of length 1
        self.unit, self.candidate_unit = unit, unit[self.candidates]  # (vocab, C), (candidates, C)

    def __call__(self, word: str) -> list[str]:
        key = word.lower()
        if key not in self.cache:
            self.cache[key] = self._nearest(key)
        return self.cache[key]

    def _nearest(self, word: str) -> list[str]:
        if word not in self.ids or word in STOP_WORDS or not word.isalpha():
            return []
        similarity = self.candidate_unit @ self.unit[self.ids[word]]  # (candidates,) cosines
        best = self.candidates[similarity.topk(self.k + 1).indices].tolist()
        return [self.vocab[i] for i in best if self.vocab[i] != word][:self.k]


def neighbours_for(tokenizer, weight: torch.Tensor, k: int) -> EmbeddingNeighbours:
    if not hasattr(tokenizer, "piece_to_id"):
        raise ConfigError(f"--augment_ops synonym/insert need a WordPiece vocabulary of whole words; this base has "
                          f"a {type(tokenizer).__name__}: use --augment_ops swap,delete")
    return EmbeddingNeighbours(tokenizer.vocab, weight, k)


# --------------------------------------------------------------------------------------- operations
# Each works on a list of (word, tag) pairs; tag None for a classification text. A "free" pair may change.

def _free(tag) -> bool:
    return tag is None or tag == "O"


def _with_case_of(original: str, word: str) -> str:
    return word.capitalize() if original[:1].isupper() else word  # an uncased vocabulary lower-cases


def synonym(pairs, n, rng, neighbours):
    places = [i for i, (word, tag) in enumerate(pairs) if _free(tag) and neighbours(word)]
    for i in rng.sample(places, min(n, len(places))):
        word, tag = pairs[i]
        pairs[i] = (_with_case_of(word, rng.choice(neighbours(word))), tag)
    return pairs


def insert(pairs, n, rng, neighbours):
    sources = [word for word, tag in pairs if _free(tag) and neighbours(word)]
    for _ in range(n if sources else 0):
        # a place between words, never before an I- tag (that would split an entity)
        places = [i for i in range(len(pairs) + 1) if i == len(pairs) or not str(pairs[i][1]).startswith("I-")]
        new_word = rng.choice(neighbours(rng.choice(sources)))
        pairs.insert(rng.choice(places), (new_word, None if pairs[0][1] is None else "O"))
    return pairs


def swap(pairs, n, rng, neighbours):
    places = [i for i, (_, tag) in enumerate(pairs) if _free(tag)]
    for _ in range(n if len(places) >= 2 else 0):
        i, j = rng.sample(places, 2)
        pairs[i], pairs[j] = pairs[j], pairs[i]
    return pairs


def delete(pairs, p, rng):
    kept = [pair for pair in pairs if not (_free(pair[1]) and rng.random() < p)]
    return kept or [rng.choice(pairs)]


def augment_pairs(pairs, cfg: AugmentConfig, rng: random.Random, neighbours) -> list:
    """One augmented copy of (word, tag) pairs: one operation of cfg.operations, drawn at random."""
    operation = rng.choice(cfg.operations)
    if not pairs:
        return []
    if operation == "delete":
        return delete(list(pairs), cfg.augment_p, rng)
    n = max(1, round(cfg.augment_p * len(pairs))) if cfg.augment_p > 0 else 0
    return {"synonym": synonym, "insert": insert, "swap": swap}[operation](list(pairs), n, rng, neighbours)


def augment_examples(examples: list, cfg: AugmentConfig, seed: int, neighbours=None) -> list:
    """The examples followed by cfg.augment_copies augmented copies of each (TextExample or TaggedSentence).
    The same seed gives the same copies."""
    rng = random.Random(seed)
    copies = []
    for _ in range(cfg.augment_copies):
        for example in examples:
            if isinstance(example, TaggedSentence):
                pairs = augment_pairs(list(zip(example.words, example.tags)), cfg, rng, neighbours)
                copies.append(TaggedSentence([w for w, _ in pairs], [t for _, t in pairs]))
            else:
                pairs = augment_pairs([(word, None) for word in example.text.split()], cfg, rng, neighbours)
                copies.append(TextExample(" ".join(w for w, _ in pairs), example.label, example.text_b))
    return examples + copies


def make_augmenter(cfg: AugmentConfig, task: str, tokenizer, weight: torch.Tensor, seed: int):
    """examples -> examples + augmented copies, for finetune.py's training split; None when off."""
    if cfg.augment_copies == 0:
        return None
    if task == "lm":
        raise ConfigError("--augment_copies augments labelled examples (--task classify or tag), not --task lm")
    needs_neighbours = {"synonym", "insert"} & set(cfg.operations)
    neighbours = neighbours_for(tokenizer, weight, cfg.synonym_neighbours) if needs_neighbours else None
    return lambda examples: augment_examples(examples, cfg, seed, neighbours)
