"""`python -m minilm.hf`: print the name table and which of its rows each transformers class reads, as Markdown
(docs/hf_weights.md shows the same)."""

import sys

from .families import format_architectures
from .names import format_table

sys.stdout.write(format_table() + "\n" + format_architectures())
