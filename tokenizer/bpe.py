"""Byte-level BPE, GPT-2 style, written out: pre-tokenise with a regex, then merge byte pairs by rank.

Encoding one piece (a regex match such as " world"):
    ids = [byte_ids[b] for b in piece.encode("utf-8")]          # start from single bytes
    repeat: among adjacent pairs (a, b) that are merges, take the one of lowest rank (learned first),
            replace every occurrence of it, left to right, by its merged id
    until no adjacent pair is a merge.
merge_bytes does exactly this in O(n log n) for n bytes, with a heap over a linked list of symbols, so one
long piece (a 1 MB base64 blob with no spaces) is not quadratic. Results are cached per piece: natural
text repeats the same few thousand words, so most pieces are a dictionary look-up. Decoding concatenates
each id's bytes and reads them as UTF-8, with any invalid sequence becoming U+FFFD, so it never fails.

Special tokens (GPT-2 has one, "<|endoftext|>") are never produced by merges. Text that contains one is
an explicit choice: ``encode(text, special="raise")`` (the default) refuses it, "allow" turns each
occurrence into its id, "text" encodes it as ordinary characters.

A chat model's tokenizer (SmolLM2's, read from its GGUF file by gguf_vocab.py) also knows which special
token plays which role (``roles``: bos_token, eos_token, ...) and carries the model's chat template, which
``apply_chat_template`` renders (chat_template.py) and encodes.
"""

import heapq
import json
from pathlib import Path

import regex

from common.atomic import write_text_atomic

from .base import Tokenizer, TokenizerFileError, check_ids, read_config, require, write_config
from .bpe_train import train_bpe
from .byte_level import (GPT2_PATTERN, bytes_to_piece, compile_pattern, pre_tokenize, pre_tokenizer_patterns,
                         replace_lone_surrogates)
from .chat_template import render_chat
from .gpt2_files import GPT2_SPECIAL_TOKENS, merges_from_ranks, read_gpt2_files, read_tiktoken_ranks, vocab_from_pieces

SPECIAL_MODES = ("raise", "allow", "text")
MAX_CACHED_PIECES = 200_000  # the per-piece cache is cleared when it grows past this (bounded memory)


class BPETokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, byte_ids, merges, special_tokens=None, pattern=GPT2_PATTERN, roles=None, chat_template=None):
        """``byte_ids[b]``: id of byte b (None: the vocabulary has no token for b, which encoding drops).
        ``merges``: (left_id, right_id, merged_id) in priority order. ``special_tokens``: string -> id, ids
        not used by any byte or merge. ``pattern``: the pre-tokenisation regex, or a tuple of them applied
        in turn (byte_level.PRE_TOKENIZERS). ``roles``: e.g. {"eos_token": 2}, each a special token's id.
        ``chat_template``: the model's Jinja chat template, or None."""
        self.pattern = pattern if isinstance(pattern, str) else tuple(pattern)
        self.regexes = [compile_pattern(p) for p in ((pattern,) if isinstance(pattern, str) else self.pattern)]
        self.regex = self.regexes[-1]  # GPT-2's only one
        self.byte_ids = list(byte_ids)
        self.missing_bytes = [b for b, token_id in enumerate(self.byte_ids) if token_id is None]
        self.merges = [tuple(m) for m in merges]
        self.special_tokens = dict(special_tokens or {})
        # (left, right) -> rank and (left, right) -> merged id: the two tables the merge loop reads
        self.merge_rank = {(a, b): rank for rank, (a, b, _) in enumerate(self.merges)}
        self.merged_id = {(a, b): new for a, b, new in self.merges}
        self.id_to_bytes = self._build_id_to_bytes()
        self.special_regex = compile_pattern("(" + "|".join(map(regex.escape, self.special_tokens)) + ")") \
            if self.special_tokens else None
        self.cache: dict[str, list[int]] = {}
        self.roles = dict(roles or {})
        unknown = {role: i for role, i in self.roles.items() if i not in self.special_tokens.values()}
        if unknown:
            raise ValueError(f"roles {unknown} name ids that are not special tokens")
        self.chat_template = chat_template

    def _build_id_to_bytes(self) -> list[bytes]:
        """id -> bytes, checking that ids are exactly 0..V-1, each made once, merges built from known ids."""
        table: dict[int, bytes] = {}
        for b, token_id in enumerate(self.byte_ids):
            if token_id is not None:
                table[token_id] = bytes([b])
        if len(self.byte_ids) != 256 or len(table) != 256 - len(self.missing_bytes):
            raise ValueError("byte_ids must give each of the 256 bytes its own id (or None)")
        for rank, (a, b, new) in enumerate(self.merges):
            if a not in table or b not in table or new in table:
                raise ValueError(f"merge {rank} ({a}, {b}) -> {new} uses an unknown id or makes an existing one")
            table[new] = table[a] + table[b]
        for special, token_id in self.special_tokens.items():
            if token_id in table:
                raise ValueError(f"special token {special!r} has id {token_id}, already used by another token")
            table[token_id] = special.encode("utf-8")
        if sorted(table) != list(range(len(table))):
            raise ValueError(f"token ids must be exactly 0..{len(table) - 1} with no gaps")
        return [table[i] for i in range(len(table))]

    # ---- constructors -------------------------------------------------------------------------------
    @classmethod
    def from_tiktoken(cls, path, special_tokens=None) -> "BPETokenizer":
        """GPT-2 from ``gpt2.tiktoken`` (``fetch("gpt2-ranks")``): merges recovered from the ranks."""
        byte_ids, merges = merges_from_ranks(read_tiktoken_ranks(path), where=path)
        return cls(byte_ids, merges, GPT2_SPECIAL_TOKENS if special_tokens is None else special_tokens)

    @classmethod
    def from_gpt2_files(cls, encoder_json, vocab_bpe, special_tokens=tuple(GPT2_SPECIAL_TOKENS)) -> "BPETokenizer":
        """GPT-2's original ``encoder.json`` + ``vocab.bpe`` (or any files in that format)."""
        byte_ids, merges, specials = read_gpt2_files(encoder_json, vocab_bpe, special_tokens)
        try:
            return cls(byte_ids, merges, specials)
        except ValueError as err:
            raise TokenizerFileError(f"{encoder_json} / {vocab_bpe}: {err}") from None

    @classmethod
    def from_token_list(cls, tokens, merges, pre_tokenizer: str, special_ids=(), roles=None, chat_template=None,
                        where="the token list") -> "BPETokenizer":
        """A byte-level BPE as a GGUF file stores it: ``tokens[i]`` is id i's string (GPT-2's byte<->unicode
        spelling, or a special token's own text), ``merges`` are "left right" strings by priority,
        ``pre_tokenizer`` a name in byte_level.PRE_TOKENIZERS, ``special_ids`` the special tokens' ids."""
        patterns = pre_tokenizer_patterns(pre_tokenizer, where)
        encoder = {token: token_id for token_id, token in enumerate(tokens)}
        if len(encoder) != len(tokens):
            raise TokenizerFileError(f"{where}: some token strings appear twice; the vocabulary is corrupt")
        specials = [tokens[i] for i in special_ids]
        byte_ids, merge_ids, specials = vocab_from_pieces(encoder, merges, specials, missing_bytes=range(256),
                                                          where=where, merges_where=f"{where} merges")
        try:
            return cls(byte_ids, merge_ids, specials, patterns, roles, chat_template)
        except ValueError as err:
            raise TokenizerFileError(f"{where}: {err}") from None

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens=("<|endoftext|>",), pattern=GPT2_PATTERN):
        """Learn merges from ``text`` until the vocabulary has ``vocab_size`` ids (see bpe_train.py)."""
        byte_ids, merges, specials = train_bpe(text, vocab_size, list(special_tokens), pattern)
        return cls(byte_ids, merges, specials, pattern)

    # ---- the interface ------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.id_to_bytes)

    @property
    def special_ids(self) -> dict[str, int]:
        return dict(self.special_tokens)

    def encode(self, text: str, special: str = "raise") -> list[int]:
        """Text -> ids. ``special`` says what a special-token string inside ``text`` becomes: "raise"
        (an error, the default), "allow" (its id) or "text" (ordinary characters)."""
        if special not in SPECIAL_MODES:
            raise ValueError(f"special={special!r}; choose one of {SPECIAL_MODES}")
        text = replace_lone_surrogates(text)
        if special == "text" or self.special_regex is None:
            return self.encode_ordinary(text)
        if special == "raise":
            found = self.special_regex.search(text)
            if found:
                raise ValueError(f"the text contains the special token {found.group()!r}; pass special='allow' "
                                 "to encode it as its id, or special='text' to encode it as plain characters")
            return self.encode_ordinary(text)
        ids: list[int] = []
        # with a capture group, split returns [text, special, text, special, ..., text]
        for i, chunk in enumerate(self.special_regex.split(text)):
            ids.extend([self.special_tokens[chunk]] if i % 2 else self.encode_ordinary(chunk))
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode with no special-token handling at all."""
        ids: list[int] = []
        cache = self.cache
        if len(cache) > MAX_CACHED_PIECES:
            cache.clear()
        pieces = self.regex.findall(text) if len(self.regexes) == 1 else pre_tokenize(self.regexes, text)
        for piece in pieces:
            piece_ids = cache.get(piece)
            if piece_ids is None:
                piece_ids = cache[piece] = self.merge_bytes(piece.encode("utf-8"))
            ids.extend(piece_ids)
        return ids

    def merge_bytes(self, data: bytes) -> list[int]:
        """BPE on one pre-tokenised piece: merge the adjacent pair of lowest rank (the leftmost of equal
        ones) until no adjacent pair is a merge. O(n log n) for n bytes.

        Rescanning all pairs after every merge costs O(n) per merge, O(n^2) per piece: 47 s for one 100 KB
        word with no spaces. Instead the symbols form a doubly linked list (a merge is an O(1) splice) and
        a heap holds the candidate pairs by (rank, position) (the next merge is an O(log n) pop). A merge
        changes only the pairs on either side of it. Rather than find and delete their old heap entries
        (a heap cannot do that cheaply) we push the two new pairs and let old entries go stale: a popped
        entry is used only if the pair now at its position still has its rank (ranks are unique, so it is
        the same pair). Merging (a, b) only creates pairs (x, ab) and (ab, y), ranked after (a, b), so
        popping in (rank, position) order is replacing each best pair everywhere, left to right."""
        ids: list[int | None] = [self.byte_ids[b] for b in data]
        if self.missing_bytes:  # a byte with no token is dropped before merging, as transformers does
            ids = [token_id for token_id in ids if token_id is not None]
        n = len(ids)
        # Position p (0..n-1) starts as the p-th byte's symbol; ids[p] is None once p is merged into
        # its left neighbour. ids[n] = None ends the list: (symbol, None) is never a merge.
        ids.append(None)
        left = list(range(-1, n))  # left[p]: position of p's left neighbour (-1: none)
        right = list(range(1, n + 2))  # right[p]: position of p's right neighbour (n: none)
        rank_of = self.merge_rank
        # A heap entry is the one int rank * (n + 1) + p: it sorts as the tuple (rank, p) would, and a heap
        # of ints is 2-3x faster than one of tuples on long pieces (one object per entry, not three).
        stride = n + 1
        heap = [rank_of[pair] * stride + p for p, pair in enumerate(zip(ids, ids[1:n])) if pair in rank_of]
        heapq.heapify(heap)
        while heap:
            rank, p = divmod(heapq.heappop(heap), stride)
            q = right[p]
            pair = (ids[p], ids[q])
            if rank_of.get(pair) != rank:  # stale: p was merged away, or a neighbour has changed since
                continue
            ids[p], ids[q] = self.merged_id[pair], None  # p keeps the merged symbol, q leaves the list
            right[p] = right[q]
            left[right[p]] = p
            for at in (left[p], p):  # the two new pairs: (left neighbour, merged), (merged, right neighbour)
                if at >= 0:
                    new_pair = (ids[at], ids[right[at]])
                    if new_pair in rank_of:
                        heapq.heappush(heap, rank_of[new_pair] * stride + at)
        return [token_id for token_id in ids if token_id is not None]

    def apply_chat_template(self, messages, add_generation_prompt: bool = True) -> list[int]:
        """A conversation ([{"role": "user", "content": "..."}, ...]) as the ids the model was trained on: its
        chat template rendered (chat_template.py) and encoded, the special tokens it writes becoming their ids.
        ``add_generation_prompt``: end with the opening of the assistant's turn, for the model to continue."""
        return self.encode(self.render_chat(messages, add_generation_prompt), special="allow")

    def render_chat(self, messages, add_generation_prompt: bool = True) -> str:
        """The text apply_chat_template encodes. A tokenizer with no chat template raises ChatTemplateError."""
        role_tokens = {role: self.id_to_bytes[token_id].decode("utf-8") for role, token_id in self.roles.items()}
        return render_chat(self.chat_template, messages, add_generation_prompt, **role_tokens)

    def decode(self, ids) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids) -> bytes:
        return b"".join([self.id_to_bytes[i] for i in check_ids(ids, self.vocab_size)])

    def id_to_piece(self, token_id: int) -> str:
        """The token as GPT-2's vocabulary writes it (bytes through the byte<->unicode table, "Ġ" = space)."""
        data = self.id_to_bytes[token_id]
        special = data.decode("utf-8", errors="replace")
        return special if self.special_tokens.get(special) == token_id else bytes_to_piece(data)

    # ---- files --------------------------------------------------------------------------------------
    def save(self, folder) -> None:
        """Write GPT-2-format ``vocab.json`` + ``merges.txt`` and a ``tokenizer.json`` naming them."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        vocab = {self.id_to_piece(i): i for i in range(self.vocab_size)}
        write_text_atomic(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False) + "\n")
        lines = [f"{self.id_to_piece(a)} {self.id_to_piece(b)}" for a, b, _ in self.merges]
        write_text_atomic(folder / "merges.txt", "#version: minilm byte-level BPE\n" + "\n".join(lines) + "\n")
        config = {"kind": self.kind, "pattern": self.pattern, "special_tokens": self.special_tokens,
                  "vocab_file": "vocab.json", "merges_file": "merges.txt"}
        chat = {"missing_bytes": self.missing_bytes, "roles": self.roles, "chat_template": self.chat_template}
        write_config(folder, {**config, **{field: value for field, value in chat.items() if value}})

    @classmethod
    def load(cls, folder) -> "BPETokenizer":
        folder = Path(folder)
        config = read_config(folder, cls.kind)
        where = folder / "tokenizer.json"
        specials = require(config, "special_tokens", dict, where)
        pattern = require(config, "pattern", (str, list), where)
        # written only by a tokenizer that has them (SmolLM2's, say)
        missing_bytes = require(config, "missing_bytes", list, where) if "missing_bytes" in config else []
        roles = require(config, "roles", dict, where) if "roles" in config else {}
        chat_template = require(config, "chat_template", str, where) if "chat_template" in config else None
        vocab_file = folder / require(config, "vocab_file", str, where)
        merges_file = folder / require(config, "merges_file", str, where)
        for path in (vocab_file, merges_file):
            if not path.is_file():
                raise TokenizerFileError(f"{path} is missing; {where} names it, save the tokenizer again")
        byte_ids, merges, found = read_gpt2_files(vocab_file, merges_file, tuple(specials), missing_bytes)
        if found != specials:
            raise TokenizerFileError(f"{vocab_file}: special tokens {found} differ from {specials} in {where}")
        try:
            return cls(byte_ids, merges, specials, pattern, roles, chat_template)
        except ValueError as err:
            raise TokenizerFileError(f"{folder}: {err}; the files are corrupt, save the tokenizer again") from None
