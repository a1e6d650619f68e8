"""Exercises with checkers: write the core pieces of minilm yourself and check them against the library.

Each stub file (e01_attention.py ... e09_lora.py) holds a function to write; `python -m exercises list`
names them, `python -m exercises check NAME` runs property checks on your version and says what is wrong.
docs/exercises.md leads through them in order. The stubs import only torch and the standard library; the
checkers (checks*.py) compare with minilm's own code.
"""
