"""`python -m minilm.parity FOLDER`: the parity command, which lives in minilm/hf/parity.py."""

import sys

from common.errors import run_command
from minilm.hf.parity import main

if __name__ == "__main__":
    sys.exit(run_command(main))
