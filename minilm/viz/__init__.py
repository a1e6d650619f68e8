"""Seeing inside: the pictures of docs/img, drawn from the code, and the attention explorer page.

    python -m minilm.viz figures                      every picture of docs/img, regenerated
    python -m minilm.viz attention --ckpt DIR --text "..." -o attention.html
"""
