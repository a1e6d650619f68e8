"""Tiny chat models for the chat tests of the service (tests/test_serve_chat*.py): no download, a second to build.

    write_chat_gguf(path)   a tiny random Llama in one GGUF file, as llama.cpp writes SmolLM2's: a byte-level
                            BPE, ChatML's two special tokens, <|im_end|> as eos and a ChatML chat template
    scripted_chat(name, s)  a chat model that writes s whatever it is asked: the tests of end tokens, stop
                            strings and split characters choose exactly what the model writes
    running_server(app)     a real uvicorn on a free 127.0.0.1 port, in a thread of the test process
"""

import socket
import threading
import time
from contextlib import contextmanager

import httpx
import torch
import uvicorn

from gguf_fixtures import write_llama_gguf
from minilm import Llama, LlamaConfig
from minilm.serve.models import ServedModel
from tokenizer.byte_level import BYTE_TO_UNICODE
from tokenizer.gguf_vocab import tokenizer_from_metadata

CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|im_start|>", "<|im_end|>"]
TOKENS = [BYTE_TO_UNICODE[b] for b in range(256)] + SPECIALS + ["th"]  # the bytes, the two specials, one merge
TYPES = [1] * 256 + [3, 3] + [1]  # 3: control (special) tokens
IM_END = 257


def write_chat_gguf(path, block_size: int = 128, seed: int = 0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(TOKENS), block_size=block_size, n_layer=1, n_head=2, n_kv_head=1, n_embd=16,
                         n_inner=32, init_std=0.3, tie_word_embeddings=True)
    return write_llama_gguf(path, config, TOKENS, TYPES, ["t h"], eos=IM_END, template=CHATML)


def byte_tokenizer(template=CHATML):
    metadata = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.tokens": TOKENS,
                "tokenizer.ggml.merges": ["t h"], "tokenizer.ggml.token_type": TYPES,
                "tokenizer.ggml.eos_token_id": IM_END}
    if template is not None:
        metadata["tokenizer.chat_template"] = template
    return tokenizer_from_metadata(metadata)


def tiny_llama(block_size: int = 128, seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return Llama(LlamaConfig(vocab_size=len(TOKENS), block_size=block_size, n_layer=1, n_head=2, n_kv_head=1,
                             n_embd=16, n_inner=32, init_std=0.3)).eval()


def scripted_chat(name: str, script, block_size: int = 128, delay: float = 0.0) -> ServedModel:
    """A chat model that writes `script` (token ids, or text whose bytes are the ids), one id per step, whatever
    the prompt, `delay` seconds a token: a tiny Llama whose generate_tokens is replaced. model.prompts records
    each prompt it was given."""
    ids = list(script.encode("utf-8")) if isinstance(script, str) else list(script)
    model = tiny_llama(block_size)
    model.prompts = []

    def generate_tokens(input_ids, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None,
                        eos_token_ids=()):
        model.prompts.append(input_ids[0].tolist())
        for token_id in ids[:max_new_tokens]:
            time.sleep(delay)
            yield torch.tensor([[token_id]])
            if token_id in eos_token_ids:
                return

    model.generate_tokens = generate_tokens
    return ServedModel(name, "scripted", model, byte_tokenizer(), None, 0.0, (IM_END,))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(app, seconds: float = 30):
    """uvicorn serving app on 127.0.0.1 in a thread; yields its base URL, and stops it at the end."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base, end = f"http://127.0.0.1:{port}", time.monotonic() + seconds
    while True:
        try:
            httpx.get(f"{base}/health", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < end and thread.is_alive(), "the server did not start"
            time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(seconds)
