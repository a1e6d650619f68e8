"""`python -m minilm.hf.export CKPT OUT`: the command of __init__.py, with CKPT's model alias resolved.

    python -m minilm.hf.export smollm2 out/smollm2-hf     # SmolLM2's GGUF from the asset cache (fetched on first use)

Only this file reads data/ (data/assets.py's model_path): minilm/hf/ is a room other rooms import, so its
command module may not (tests/test_layering.py); __init__.py does all the rest.
"""

import sys

from common.errors import run_command
from data.assets import model_path
from minilm.hf import export


def main(argv=None) -> None:
    export.main(argv, resolve_model=model_path)


if __name__ == "__main__":
    sys.exit(run_command(main))
