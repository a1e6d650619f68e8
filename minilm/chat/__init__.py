"""Talking to a chat model: a conversation rendered by the model's own template, answers streamed token
by token and ended at the model's end-of-turn token (docs/llama.md, "Talk to SmolLM2").

    load.py      a decoder and its tokenizer from a GGUF file, a Hugging Face folder or a minilm checkpoint
                 (load_decoder, which sample.py uses too); load_chat_model: one whose tokenizer has a chat template
    session.py   ChatSession: the conversation so far, /reset, /system, one streamed answer
    __main__.py  python -m minilm.chat: the terminal chat (and --prompt, one answer for scripts)
"""

from .load import ChatModel, Decoder, load_chat_model, load_decoder
from .session import ChatSession

__all__ = ["ChatModel", "Decoder", "load_chat_model", "load_decoder", "ChatSession"]
