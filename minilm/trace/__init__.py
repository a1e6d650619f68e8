"""The shape trace: one forward pass, each named step with its shape, dtype, statistics and file:line.

    python -m minilm.trace gpt --config small        (or bert, a minilm checkpoint, a Hugging Face folder)
"""
