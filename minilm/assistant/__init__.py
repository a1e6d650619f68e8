"""A customer-service assistant on chatterbot-corpus (docs/applications.md; `python -m minilm.assistant`).

    encoder.py      sentences -> unit vectors: MiniLM's hidden states, mean-pooled
    retrieval.py    the nearest known question: cosine of embeddings, or TF-IDF (the baseline)
    assistant.py    the reply: the nearest question's answer, or a GPT / "I don't know" below a threshold;
                    the intent classifier (a finetune.py checkpoint) that names the category
    evaluation.py   top-1 / top-5 on reworded questions, the threshold tuned on validation
    vocabulary.py   what the tokenizer makes of a language: [UNK]s, texts it cannot tell apart
    __main__.py     the commands: chat in the terminal, evaluate
"""
