"""What a tokenizer makes of a corpus: how much becomes [UNK], and which texts it cannot tell apart.

BERT's uncased vocabulary has 30,522 pieces, of which only 244 are Chinese characters (一, 三, 上, ...):
"什么是ai" becomes [UNK] [UNK] [UNK] ai. Texts whose ids come out identical get identical embeddings, so
no index can tell them apart; `indistinct` counts them.
"""

from collections import Counter


def vocabulary_coverage(tokenizer, texts: list[str]) -> dict[str, float]:
    """{"unk_share": share of the pieces that are [UNK], "indistinct": share of texts whose ids equal another's}."""
    encoded = [tuple(tokenizer.encode(text)) for text in texts]
    pieces = [i for ids in encoded for i in ids]
    repeats = Counter(encoded)
    return {"unk_share": sum(i == tokenizer.unk_id for i in pieces) / max(1, len(pieces)),
            "indistinct": sum(repeats[ids] > 1 for ids in encoded) / max(1, len(encoded))}
