"""Command line: look at how text becomes ids, or train a vocabulary.

    python -m tokenizer encode --tokenizer gpt2 "Hello world"
    python -m tokenizer encode --tokenizer smollm2 --special allow "<|im_start|>user"   # special tokens as ids
    python -m tokenizer encode --tokenizer out/ "Hello world"        # a saved tokenizer folder
    python -m tokenizer train --kind bpe --vocab_size 4096 corpus.txt out/

train writes OUT only where common/output_guard.py allows: a new or empty folder, or one it trained into
before (its written_by.json); --overwrite for any other folder, never one that is or holds the corpus.
A command, not part of the library: it fetches the named vocabularies through data/tokenizers.py,
which the library modules of tokenizer/ never import.
"""

import argparse
import sys
from pathlib import Path

from common.errors import ConfigError, MissingFileError, run_command
from common.output_guard import guard_output, mark_output
from data.tokenizers import NAMED_VOCABULARIES, named_tokenizer

from .bpe import SPECIAL_MODES, BPETokenizer
from .factory import TRAINABLE_KINDS, build_tokenizer, load_tokenizer

TRAIN = "python -m tokenizer train"


def pieces_of(tok, ids: list[int]) -> list[str]:
    """A readable string per id: the vocabulary piece where the tokenizer has one, else its decoded text."""
    if hasattr(tok, "id_to_piece"):
        return [tok.id_to_piece(i) for i in ids]
    if hasattr(tok, "vocab"):
        return [tok.vocab[i] for i in ids]
    if hasattr(tok, "processor"):
        return [tok.processor.IdToPiece(i) for i in ids]
    return [tok.decode([i]) for i in ids]


def command_encode(args) -> None:
    if Path(args.tokenizer).is_dir():
        tok = load_tokenizer(args.tokenizer)
    elif args.tokenizer in NAMED_VOCABULARIES:
        tok = named_tokenizer(args.tokenizer)
    else:
        raise ConfigError(f"--tokenizer {args.tokenizer!r}: give {', '.join(NAMED_VOCABULARIES)} or the folder of a "
                          "saved tokenizer (train one with: python -m tokenizer train --kind KIND --vocab_size N "
                          "corpus.txt out/)")
    if args.special is not None and not isinstance(tok, BPETokenizer):
        raise ConfigError(f"--special is for byte-level BPE tokenizers; {args.tokenizer} is a {tok.kind} tokenizer")
    try:
        ids = tok.encode(args.text, special=args.special) if args.special else tok.encode(args.text)
    except ValueError as err:  # e.g. a character a char vocabulary lacks, a special token in the text
        hint = " (here: --special allow or --special text)" if isinstance(tok, BPETokenizer) else ""
        raise ConfigError(f"the text cannot be encoded: {err}{hint}") from None
    print("ids:   ", ids)
    print("pieces:", pieces_of(tok, ids))


def command_train(args) -> None:
    corpus = Path(args.corpus)
    guard_output(args.out, "OUT", TRAIN, inputs={f"the corpus {corpus}": corpus}, overwrite=args.overwrite)
    if not corpus.is_file():
        raise MissingFileError(f"{corpus}: no such file; pass a UTF-8 text file to train on")
    try:
        text = corpus.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{corpus} is not UTF-8 text (byte {err.start}); convert it first") from None
    tok = build_tokenizer(args.kind, text=text, vocab_size=args.vocab_size)
    mark_output(args.out, TRAIN)
    tok.save(args.out)
    print(f"trained {type(tok).__name__} with {tok.vocab_size} ids on {len(text):,} characters; saved to {args.out}")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # `error: <message>`, exit 2, through run_command
        raise ConfigError(message)


def main(argv=None) -> None:
    parser = _Parser(prog="python -m tokenizer", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    encode = commands.add_parser("encode", help="print the ids and pieces of a text")
    encode.add_argument("--tokenizer", required=True,
                        help=f"{', '.join(NAMED_VOCABULARIES)}, or a saved tokenizer folder")
    encode.add_argument("--special", choices=SPECIAL_MODES, default=None,
                        help="byte-level BPE: a special token in the text is an error (raise, the default), its id "
                             "(allow) or plain characters (text)")
    encode.add_argument("text")
    encode.set_defaults(run=command_encode)
    train = commands.add_parser("train", help="train a vocabulary on a text file and save it")
    train.add_argument("--kind", required=True, choices=TRAINABLE_KINDS)
    train.add_argument("--vocab_size", type=int, default=None, help="target vocabulary size (not for char)")
    train.add_argument("corpus", help="a UTF-8 text file")
    train.add_argument("out", help="folder to save the tokenizer into: new or empty, or one this command wrote")
    train.add_argument("--overwrite", action="store_true", help="save into a folder of other files, a checkpoint's "
                       "tokenizer/ included (never one that holds the corpus)")
    train.set_defaults(run=command_train)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    sys.exit(run_command(main))
