"""`python -m minilm.viz`: seeing inside a model. One subcommand per picture, each with its own parser:

    python -m minilm.viz attention --ckpt DIR --text "..." [--text-b "..."] [--layer L] [--head H|all]
                                   [-o attention.html]
    python -m minilm.viz figures [--out docs/img] [--gpt DIR]     every picture of docs/img (docs_figures.py)

Each writes only where common/output_guard.py allows: a page it wrote before (its generator tag) or a new
file, a folder it wrote before (written_by.json) or a new one; --overwrite for anything else but an input.

A command, not part of the library: it may use data/ (the asset cache for the standard GPT-2 vocabulary
and for a fine-tuned checkpoint's base named by an alias); minilm/viz/attention_page.py does the work.
"""

import argparse
import sys

from common.atomic import write_text_atomic
from common.errors import ConfigError, run_command
from common.output_guard import FILE, guard_output
from data.assets import base_model_folder, model_path
from data.tokenizers import named_tokenizer
from minilm.finetune.checkpoints import open_model
from minilm.gguf.load import is_gguf, load_gguf
from tokenizer.gguf_vocab import tokenizer_from_gguf

from . import docs_figures
from .attention_page import GENERATOR_TAG, attention_page_data, render_page

ATTENTION = "python -m minilm.viz attention"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # `error: <message>`, exit 2, through run_command, not argparse's usage dump
        raise ConfigError(message)


# ------------------------------------------------------------------------------------------- attention

def head_number_or_all(value: str) -> int | None:
    if value == "all":
        return None  # every head of the layer, side by side
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a head number (counted from 0) or all") from None


def add_attention_parser(commands) -> None:
    parser = commands.add_parser("attention", help="an HTML page of every layer's and head's attention on a text",
                                 description="Write one self-contained HTML page (no network: open it from "
                                             "disk) that draws the attention of every layer and head on a text.")
    parser.add_argument("--ckpt", required=True,
                        help="a train_gpt.py / train_bert.py checkpoint or out_dir (GPT, Llama, BERT), a finetune.py "
                             "checkpoint, a Hugging Face GPT-2 / BERT folder, a .gguf file, minilm-l6 or smollm2")
    parser.add_argument("--text", required=True, help="the text (a BERT's segment A)")
    parser.add_argument("--text-b", dest="text_b", default=None, help="a BERT's second segment; not for a GPT")
    parser.add_argument("--layer", type=int, default=0, help="the layer shown first, counted from 0 (default 0)")
    parser.add_argument("--head", type=head_number_or_all, default=0,
                        help="the head shown first, counted from 0, or all (default 0)")
    parser.add_argument("-o", "--out", default="attention.html", help="the page to write (default attention.html); "
                        "a page this command wrote is replaced, any other file only with --overwrite")
    parser.add_argument("--overwrite", action="store_true", help="replace an -o file this command did not write "
                        "(never the --ckpt folder or a file in it)")
    parser.set_defaults(run=command_attention)


def command_attention(args) -> None:
    guard_output(args.out, "-o", ATTENTION, inputs={f"--ckpt {args.ckpt}": args.ckpt}, overwrite=args.overwrite,
                 kind=FILE, tag=GENERATOR_TAG)
    # An alias (minilm-l6, smollm2) is fetched into the asset cache, as finetune.py's --base does.
    path = model_path(args.ckpt)
    if is_gguf(path):  # one file holds the model and its tokenizer (minilm/gguf/, tokenizer/gguf_vocab.py)
        backbone, tokenizer = load_gguf(path), tokenizer_from_gguf(path)
    else:
        backbone, tokenizer = open_model(str(path), "--ckpt", resolve_alias=base_model_folder,
                                         gpt2_tokenizer=lambda: named_tokenizer("gpt2"))
    data = attention_page_data(backbone, tokenizer, args.text, args.text_b, source=args.ckpt,
                               layer=args.layer, head=args.head)
    for note in data["notes"]:
        print(f"note: {note}", file=sys.stderr)
    try:
        write_text_atomic(args.out, render_page(data))
    except OSError as err:  # a folder in the way, no permission, a full disk
        raise ConfigError(f"-o {args.out}: cannot write the page ({err.strerror or err})") from None
    model = data["model"]
    print(f"wrote {args.out}: {len(data['tokens'])} tokens, {model['n_layer']} layers x {model['n_head']} heads "
          f"of {model['class']}; open it in a browser")


# -------------------------------------------------------------------------------------------- commands

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m minilm.viz", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_attention_parser(commands)
    commands.add_parser("figures", help="draw every picture of docs/img again (docs_figures.py; figures --help)")
    return parser


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["figures"]:  # its own parser (docs_figures.main) reads the rest, --help included
        return docs_figures.main(argv[1:])
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    sys.exit(run_command(main))
