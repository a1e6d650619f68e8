"""GPT-2's vocabulary files: reading its two published forms, and writing the second.

- ``gpt2.tiktoken`` (what ``fetch("gpt2-ranks")`` gives): one line per token, ``<base64 bytes> <rank>``,
  50,256 lines. A token's rank is both its id and its merge priority. The merges themselves are not
  stored, but each can be recovered: BPE is deterministic, so running BPE on a token's own bytes,
  allowed only the merges of lower rank, must stop at exactly the two parts that merge into it.
- ``encoder.json`` (token string -> id, strings written through the byte<->unicode table) plus
  ``vocab.bpe`` (a "#version" line, then one merge per line, "left right", in priority order).

Both readers return the same plain description, ``(byte_ids, merges, special_tokens)``, that
``BPETokenizer`` is built from: ``byte_ids[b]`` is the id of the single byte ``b``, ``merges`` lists
``(left_id, right_id, merged_id)`` by priority (first = applied first). ``write_gpt2_files`` turns that
description back into ``vocab.json`` + ``merges.txt`` (the names transformers gives encoder.json and
vocab.bpe), which ``read_gpt2_files`` and transformers' GPT2Tokenizer read.
"""

import base64
import binascii
import json
from pathlib import Path

from common.atomic import write_text_atomic

from .base import TokenizerFileError
from .byte_level import bytes_to_piece, piece_to_bytes

GPT2_SPECIAL_TOKENS = {"<|endoftext|>": 50256}
Merges = list[tuple[int, int, int]]


def read_tiktoken_ranks(path) -> dict[bytes, int]:
    """Parse a ``.tiktoken`` file into token bytes -> rank, checking every line."""
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.split()
            try:
                token, rank = base64.b64decode(fields[0], validate=True), int(fields[1])
                if len(fields) != 2:
                    raise ValueError
            except (ValueError, IndexError, binascii.Error):
                raise TokenizerFileError(f"{path}, line {line_number}: expected '<base64 token> <rank>', got "
                                         f"{line[:80]!r}; the ranks file is corrupt") from None
            if token in ranks:
                raise TokenizerFileError(f"{path}, line {line_number}: token {token!r} appears twice")
            ranks[token] = rank
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise TokenizerFileError(f"{path}: ranks are not exactly 0..{len(ranks) - 1}; the ranks file is corrupt")
    return ranks


def split_by_lower_ranks(token: bytes, ranks: dict[bytes, int]) -> list[bytes]:
    """Run BPE on ``token``'s bytes using only merges whose result ranks below ``token`` itself.

    For a token made by a merge this stops at the two parts it was made from."""
    limit = ranks[token]
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best_rank, best_i = min((ranks.get(parts[i] + parts[i + 1], limit), i) for i in range(len(parts) - 1))
        if best_rank >= limit:
            break
        parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return parts


def merges_from_ranks(ranks: dict[bytes, int], where="ranks") -> tuple[list[int], Merges]:
    """Recover (byte_ids, merges) from tiktoken ranks; merges come out in rank order."""
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerFileError(f"{where}: single bytes {missing[:5]} have no rank; every byte needs one")
    byte_ids = [ranks[bytes([b])] for b in range(256)]
    merges: Merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = split_by_lower_ranks(token, ranks)
        if len(parts) != 2:
            raise TokenizerFileError(f"{where}: token {token!r} (rank {rank}) cannot be made by merging two "
                                     "lower-ranked tokens; these are not BPE ranks")
        merges.append((ranks[parts[0]], ranks[parts[1]], rank))
    return byte_ids, merges


def read_gpt2_files(encoder_json, vocab_bpe, special_tokens=tuple(GPT2_SPECIAL_TOKENS), missing_bytes=()):
    """Read GPT-2's original encoder.json + vocab.bpe into (byte_ids, merges, special_tokens).
    ``missing_bytes``: bytes the vocabulary may lack (see vocab_from_pieces); any other missing is an error."""
    try:
        encoder = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TokenizerFileError(f"{encoder_json} is not valid JSON ({err}); the vocabulary file is corrupt") from None
    if not isinstance(encoder, dict) or not all(isinstance(i, int) for i in encoder.values()):
        raise TokenizerFileError(f"{encoder_json} must map token strings to integer ids")
    lines = Path(vocab_bpe).read_text(encoding="utf-8").splitlines()
    first = 1 if lines and lines[0].startswith("#version") else 0  # a header line, not a merge
    return vocab_from_pieces(encoder, lines[first:], special_tokens, missing_bytes, where=str(encoder_json),
                             merges_where=str(vocab_bpe), first_line=first + 1)


def vocab_from_pieces(encoder: dict[str, int], merge_lines, special_tokens=(), missing_bytes=(),
                      where="the vocabulary", merges_where="the merges", first_line=1):
    """(byte_ids, merges, special_tokens) from GPT-2's written form, whatever it was read from (the two
    files above, or a GGUF file's token and merge lists): ``encoder`` maps each token string (through the
    byte<->unicode table, or a special token's own text) to its id; each merge line is "left right".

    A vocabulary may lack a few single bytes (SmolLM2's has no token for 21 bytes: those that never occur
    in UTF-8 and six rare control characters). ``missing_bytes`` lists those allowed to be absent; their
    ``byte_ids[b]`` is None, and encoding drops such a byte, as transformers does."""
    specials = {s: encoder[s] for s in special_tokens if s in encoder}
    id_of_bytes: dict[bytes, int] = {}
    for piece, token_id in encoder.items():
        if piece in specials:
            continue
        try:
            id_of_bytes[piece_to_bytes(piece)] = token_id
        except KeyError:
            raise TokenizerFileError(f"{where}: token {piece!r} uses a character outside GPT-2's "
                                     "byte<->unicode table; the vocabulary file is corrupt") from None
    missing = [b for b in range(256) if bytes([b]) not in id_of_bytes and b not in missing_bytes]
    if missing:
        raise TokenizerFileError(f"{where}: single bytes {missing[:5]} have no id; every byte needs one")
    byte_ids = [id_of_bytes.get(bytes([b])) for b in range(256)]
    merges: Merges = []
    for line_number, line in enumerate(merge_lines, start=first_line):
        if not line.strip():
            continue
        fields = line.split(" ")
        try:
            if len(fields) != 2:
                raise KeyError(line)
            left, right = piece_to_bytes(fields[0]), piece_to_bytes(fields[1])
            merges.append((id_of_bytes[left], id_of_bytes[right], id_of_bytes[left + right]))
        except KeyError:
            raise TokenizerFileError(f"{merges_where}, line {line_number}: {line[:80]!r} is not a merge of two "
                                     f"tokens whose result is in {Path(where).name}; the file is corrupt") from None
    return byte_ids, merges, specials


def write_gpt2_files(vocab_json, merges_txt, byte_ids, merges: Merges, special_tokens: dict[str, int]) -> None:
    """Write (byte_ids, merges, special_tokens) as GPT-2's two files, each atomically:
    ``vocab_json`` maps every token's string to its id, ``merges_txt`` is a "#version" line, then
    "left right" per merge, in priority order."""
    pieces = gpt2_pieces(byte_ids, merges, special_tokens)
    vocab = {piece: token_id for token_id, piece in enumerate(pieces)}
    lines = [f"{pieces[left]} {pieces[right]}" for left, right, _ in merges]
    write_text_atomic(vocab_json, json.dumps(vocab, ensure_ascii=False) + "\n")
    write_text_atomic(merges_txt, "#version: 0.2\n" + "".join(line + "\n" for line in lines))


def gpt2_pieces(byte_ids, merges: Merges, special_tokens: dict[str, int]) -> list[str]:
    """Every id's string in GPT-2's files, in id order: its bytes through the byte<->unicode table, or a
    special token's own text. The files key tokens by string, so two ids with one string are refused."""
    token_bytes = {token_id: bytes([b]) for b, token_id in enumerate(byte_ids) if token_id is not None}
    for left, right, merged in merges:
        token_bytes[merged] = token_bytes[left] + token_bytes[right]
    pieces = {token_id: bytes_to_piece(data) for token_id, data in token_bytes.items()}
    pieces.update({token_id: special for special, token_id in special_tokens.items()})
    id_of_piece: dict[str, int] = {}
    for token_id, piece in sorted(pieces.items()):
        if piece in id_of_piece:
            raise TokenizerFileError(f"ids {id_of_piece[piece]} and {token_id} are both the token {piece!r}; "
                                     "GPT-2's vocab.json can hold a token string only once")
        id_of_piece[piece] = token_id
    return [pieces[token_id] for token_id in range(len(pieces))]
