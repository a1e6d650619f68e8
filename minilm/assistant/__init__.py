"""A customer-service assistant on chatterbot-corpus (docs/applications.md; `python -m minilm.assistant`).

    encoder.py      sentences -> unit vectors: MiniLM's hidden states, mean-pooled
    retrieval.py    the nearest known question: cosine of embeddings, or TF-IDF (the baseline)
    assistant.py    the reply: the nearest question's answer, or "I don't know" below a threshold;
                    the intent classifier (a finetune.py checkpoint) that names the category
    knowledge.py    the store of Q/A pairs a command builds and the service loads: vectors + texts, its encoder
    pairs.py        a user's Q/A pairs from .jsonl or .csv, for the store
    rag.py          retrieval-augmented answers: the nearest pairs in the prompt, a chat model writes, sources
    evaluation.py   top-1 / top-5 on reworded questions, the threshold tuned on validation; the answer judge
    vocabulary.py   what the tokenizer makes of a language: [UNK]s, texts it cannot tell apart
    __main__.py     the commands: chat in the terminal (--rag), index, evaluate
"""
