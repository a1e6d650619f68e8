"""The two pieces of GPT-2's byte-level BPE that come before any merging.

1. Pre-tokenisation. Text is first cut into pieces by a regular expression, and merges never cross a
   piece boundary, so " world" and "world!" can never fuse into one token with the "!" or the word before.
2. The byte <-> unicode table. BPE runs on the UTF-8 *bytes* of each piece (so any string can be encoded,
   with no unknown token). GPT-2's files (encoder.json, vocab.bpe) store tokens as text, so each of the 256
   bytes is given a printable stand-in character: printable bytes stand for themselves, the rest
   (control bytes, space, 0x7F-0xA0, 0xAD) are moved to code points 256, 257, ... in order. That is why
   GPT-2's vocabulary shows a leading space as "Ġ" (U+0120, the stand-in for byte 0x20).
"""

import regex

# GPT-2's pattern, alternative by alternative (the first that matches at a position wins):
#   's|'t|'re|'ve|'m|'ll|'d   English contractions, split off the word before them
#    ?\p{L}+                  a run of letters, with at most one space glued in front
#    ?\p{N}+                  a run of digits (any script), likewise
#    ?[^\s\p{L}\p{N}]+        a run of punctuation/symbols, likewise
#   \s+(?!\S)                 whitespace up to (not including) the last space before a word, so that
#                             space can start the next piece: "a   b" -> "a", "  ", " b"
#   \s+                       any remaining whitespace (at the end of the text)
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def compile_pattern(pattern: str) -> regex.Pattern:
    try:
        return regex.compile(pattern)
    except regex.error as err:
        raise ValueError(f"pre-tokenisation pattern {pattern!r} is not a valid regular expression: {err}") from None


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
