"""BERT's "basic tokenizer": the text clean-up and splitting that happen before WordPiece.

In order, exactly as Hugging Face's BertNormalizer + BertPreTokenizer (what BertTokenizerFast runs):
  1. clean:        drop NUL, U+FFFD and control/format/private-use characters (Unicode categories Cc, Cf,
                   Co, Cs; tab, newline and carriage return count as whitespace instead), then turn every
                   whitespace character into a plain space;
  2. CJK:          put spaces around each CJK ideograph, so each becomes its own word (Chinese has no spaces);
  3. accents:      (when uncased) decompose to NFD and drop the combining marks (category Mn): "é" -> "e";
  4. lower-case:   (when uncased) character by character, so "Σ" is always "σ" (no final-sigma rule);
  5. split:        on whitespace, then every punctuation character becomes a word of its own.
Character properties come from Python's ``unicodedata``. The tokenizers library carries older Unicode
tables, so the two can disagree on characters assigned in recent Unicode versions.

Steps 1-4 run on the whole text with ``str.translate`` / ``str.lower`` (fast); each character's role
is decided once and cached.
"""

import unicodedata
from functools import lru_cache


def is_chinese_char(code_point: int) -> bool:
    """The CJK Unified Ideographs blocks (not Hangul, Hiragana or Katakana, which use spaces)."""
    return (0x4E00 <= code_point <= 0x9FFF or 0x3400 <= code_point <= 0x4DBF or 0x20000 <= code_point <= 0x2A6DF
            or 0x2A700 <= code_point <= 0x2B73F or 0x2B740 <= code_point <= 0x2B81F
            or 0x2B920 <= code_point <= 0x2CEAF or 0xF900 <= code_point <= 0xFAFF
            or 0x2F800 <= code_point <= 0x2FA1F)


def is_punctuation(char: str) -> bool:
    """ASCII punctuation and symbols (so "$", "+", "^" count) or any Unicode punctuation (category P*)."""
    code_point = ord(char)
    if 33 <= code_point <= 47 or 58 <= code_point <= 64 or 91 <= code_point <= 96 or 123 <= code_point <= 126:
        return True
    return unicodedata.category(char).startswith("P")


@lru_cache(maxsize=None)
def clean_replacement(char: str) -> str | None:
    """What step 1 + 2 turn ``char`` into: "" (dropped), " ", " c " (CJK), or None (kept as it is)."""
    if char in "\t\n\r":
        return " "
    if char in "\x00\ufffd" or unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs"):
        return ""
    if char.isspace():
        return " "
    if is_chinese_char(ord(char)):
        return f" {char} "
    return None


def clean_text(text: str) -> str:
    """Steps 1 and 2: drop control characters, spaces for whitespace, spaces around CJK ideographs."""
    if text.isascii() and text.isprintable():
        return text
    table = {ord(c): new for c in set(text) if (new := clean_replacement(c)) is not None}
    return text.translate(table)


@lru_cache(maxsize=None)
def is_nonspacing_mark(char: str) -> bool:
    return unicodedata.category(char) == "Mn"


def strip_accents(text: str) -> str:
    """Step 3: NFD, then drop nonspacing marks."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFD", text)
    return text.translate({ord(c): None for c in set(text) if is_nonspacing_mark(c)})


def lowercase(text: str) -> str:
    """Step 4: per-character lower-casing. ``str.lower`` applies one context rule (final sigma: "ΑΣ" ->
    "ας"); tokenizers lower-cases each character alone ("ΑΣ" -> "ασ"), so capital sigma is done first."""
    return text.replace("Σ", "σ").lower()


def normalize(text: str, lowercase_text: bool = True, strip_accents_text: bool | None = None) -> str:
    """Steps 1-4. ``strip_accents_text=None`` means "strip when lower-casing", as in BERT uncased."""
    text = clean_text(text)
    if strip_accents_text or (strip_accents_text is None and lowercase_text):
        text = strip_accents(text)
    if lowercase_text:
        text = lowercase(text)
    return text


def split_on_punctuation(word: str) -> list[str]:
    """Step 5, second half: "don't!" -> ["don", "'", "t", "!"]."""
    if word.isalnum():
        return [word]
    pieces: list[str] = []
    start = 0
    for i, char in enumerate(word):
        if is_punctuation(char):
            if start < i:
                pieces.append(word[start:i])
            pieces.append(char)
            start = i + 1
    if start < len(word):
        pieces.append(word[start:])
    return pieces


def basic_tokenize(text: str, lowercase_text: bool = True, strip_accents_text: bool | None = None) -> list[str]:
    """Steps 1-5: the words WordPiece then splits into sub-words."""
    words = normalize(text, lowercase_text, strip_accents_text).split()
    return [piece for word in words for piece in split_on_punctuation(word)]
