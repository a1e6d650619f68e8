"""The two pieces of GPT-2's byte-level BPE that come before any merging.

1. Pre-tokenisation. Text is first cut into pieces by a regular expression (or several in turn, see
   PRE_TOKENIZERS), and merges never cross a piece boundary, so " world" and "world!" can never fuse into
   one token with the "!" or the word before.
2. The byte <-> unicode table. BPE runs on the UTF-8 *bytes* of each piece (so any string can be encoded,
   with no unknown token). GPT-2's files (encoder.json, vocab.bpe) store tokens as text, so each of the 256
   bytes is given a printable stand-in character: printable bytes stand for themselves, the rest
   (control bytes, space, 0x7F-0xA0, 0xAD) are moved to code points 256, 257, ... in order. That is why
   GPT-2's vocabulary shows a leading space as "Ġ" (U+0120, the stand-in for byte 0x20).
"""

import regex

from common.errors import ConfigError

# GPT-2's pattern, alternative by alternative (the first that matches at a position wins):
#   's|'t|'re|'ve|'m|'ll|'d   English contractions, split off the word before them
#    ?\p{L}+                  a run of letters, with at most one space glued in front
#    ?\p{N}+                  a run of digits (any script), likewise
#    ?[^\s\p{L}\p{N}]+        a run of punctuation/symbols, likewise
#   \s+(?!\S)                 whitespace up to (not including) the last space before a word, so that
#                             space can start the next piece: "a   b" -> "a", "  ", " b"
#   \s+                       any remaining whitespace (at the end of the text)
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
DIGIT_PATTERN = r"\p{N}"  # one digit (of any script) on its own

# Later byte-level BPEs pre-tokenise with several patterns in turn: each cuts every piece the one before it
# made into its matches and the text between them. A GGUF file names its pre-tokenizer
# (tokenizer.ggml.pre); these are llama.cpp's names for the ones minilm knows.
#   gpt-2    GPT-2's pattern alone
#   smollm   digits cut out one by one first, then GPT-2's pattern on the text between them, so a number is
#            always one digit a piece, and a run of spaces before a digit stays one piece: "x  1" -> "x",
#            "  ", "1" (GPT-2's pattern alone gives "x", " ", " 1": its lookahead saw the digit)
PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    "gpt-2": (GPT2_PATTERN,),
    "smollm": (DIGIT_PATTERN, GPT2_PATTERN),
}


def pre_tokenizer_patterns(name: str, where: str = "") -> tuple[str, ...]:
    """The patterns of the pre-tokenizer called ``name``; ConfigError naming the known ones otherwise, never
    a silent GPT-2 (a wrong split gives other ids with no error at all)."""
    if name not in PRE_TOKENIZERS:
        raise ConfigError(f"{where}{': ' if where else ''}unknown pre-tokenizer {name!r}; minilm knows "
                          f"{', '.join(PRE_TOKENIZERS)} (a new one's patterns go in tokenizer/byte_level.py)")
    return PRE_TOKENIZERS[name]


def compile_pattern(pattern: str) -> regex.Pattern:
    try:
        return regex.compile(pattern)
    except regex.error as err:
        raise ValueError(f"pre-tokenisation pattern {pattern!r} is not a valid regular expression: {err}") from None


def pre_tokenize(regexes: list[regex.Pattern], text: str) -> list[str]:
    """Cut ``text`` with each regex in turn: every regex but the last keeps the text between its matches
    as pieces too; the last keeps its matches (GPT-2's pattern matches every character, so it loses none)."""
    pieces = [text]
    for cut in regexes[:-1]:
        pieces = [part for piece in pieces for part in split_keeping_gaps(cut, piece)]
    last = regexes[-1]
    return [part for piece in pieces for part in last.findall(piece)]


def split_keeping_gaps(cut: regex.Pattern, text: str) -> list[str]:
    """``text`` as its matches of ``cut`` and the (non-empty) stretches between them, in order."""
    parts, end = [], 0
    for match in cut.finditer(text):
        if match.start() > end:
            parts.append(text[end:match.start()])
        parts.append(match.group())
        end = match.end()
    if end < len(text):
        parts.append(text[end:])
    return parts


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table: byte value (0..255) -> the printable character that stands for it in vocab files."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    next_code_point = 256
    for b in range(256):
        if b not in table:  # a control byte, space, DEL, NBSP or soft hyphen: give it a fresh code point
            table[b] = chr(next_code_point)
            next_code_point += 1
    return table


BYTE_TO_UNICODE = bytes_to_unicode()
UNICODE_TO_BYTE = {char: b for b, char in BYTE_TO_UNICODE.items()}


def bytes_to_piece(token: bytes) -> str:
    """Token bytes -> its GPT-2 vocabulary string, e.g. b" world" -> "Ġworld"."""
    return "".join(BYTE_TO_UNICODE[b] for b in token)


def piece_to_bytes(piece: str) -> bytes:
    """A GPT-2 vocabulary string -> the bytes it stands for; KeyError on a character outside the table."""
    return bytes(UNICODE_TO_BYTE[c] for c in piece)


def replace_lone_surrogates(text: str) -> str:
    """A Python str may hold lone surrogates (U+D800..U+DFFF), which UTF-8 cannot encode: they become U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
