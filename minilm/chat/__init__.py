"""Talking to a chat model: a conversation rendered by the model's own template, answers streamed token
by token and ended at the model's end-of-turn token (docs/llama.md, "Talk to SmolLM2").

    load.py      a chat model and its tokenizer from a GGUF file, a Hugging Face folder or a minilm checkpoint
    session.py   ChatSession: the conversation so far, /reset, /system, one streamed answer
    __main__.py  python -m minilm.chat: the terminal chat (and --prompt, one answer for scripts)
"""

from .load import ChatModel, load_chat_model
from .session import ChatSession

__all__ = ["ChatModel", "load_chat_model", "ChatSession"]
