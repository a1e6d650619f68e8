"""`python -m minilm.hf`: print the name table as Markdown (docs/hf_weights.md shows the same)."""

import sys

from .names import format_table

sys.stdout.write(format_table())
