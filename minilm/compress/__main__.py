"""python -m minilm.compress quantize | prune: see minilm/compress/commands.py."""

import sys

from common.errors import run_command

from .commands import main

if __name__ == "__main__":
    sys.exit(run_command(main))
