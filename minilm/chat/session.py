"""A conversation with a chat model: the messages so far, rendered by the model's template at every turn,
and the answer streamed as it is decoded.

Each turn renders the whole conversation (system message, every user and assistant message, then the
opening of a new assistant turn) and decodes until the model writes its end-of-turn token. When the
conversation no longer fits the context, the oldest exchanges are dropped (and the caller is told).
"""

import codecs

import torch

from common.errors import UserError

from .load import ChatModel


class ChatSession:
    def __init__(self, chat: ChatModel, system: str | None = None):
        self.chat = chat
        self.system = system  # None: the template's own default system message, if it has one
        self.messages: list[dict] = []  # user and assistant turns, oldest first
        self.dropped = 0  # exchanges dropped so far to fit the context

    def reset(self) -> None:
        self.messages, self.dropped = [], 0

    def prompt_ids(self, max_new_tokens: int) -> list[int]:
        """The conversation as ids, ending with the assistant's opening; the oldest exchanges dropped until
        it leaves room for max_new_tokens."""
        room = self.chat.context_length - max_new_tokens
        if room < 1:
            raise UserError(f"max_new_tokens {max_new_tokens} leaves no room for a prompt in the model's context "
                            f"of {self.chat.context_length} tokens; ask for fewer")
        while True:
            system = [{"role": "system", "content": self.system}] if self.system is not None else []
            ids = self.chat.tokenizer.apply_chat_template(system + self.messages, add_generation_prompt=True)
            if len(ids) <= room:
                return ids
            if len(self.messages) <= 1:
                raise UserError(f"the message is {len(ids)} tokens with the system prompt; the model reads at "
                                f"most {room} before writing {max_new_tokens}: shorten it or lower max_new_tokens")
            self.messages = self.messages[2:]  # the oldest user message and its answer
            self.dropped += 1

    def reply(self, text: str, max_new_tokens: int = 256, temperature: float = 0.0, top_k: int | None = None,
              top_p: float | None = None, generator: torch.Generator | None = None):
        """Add the user's message and yield the answer in pieces of text as they are decoded. The answer
        (what was decoded, even if the caller stops early) joins the conversation."""
        self.messages.append({"role": "user", "content": text})
        prompt = torch.tensor([self.prompt_ids(max_new_tokens)])  # (1, T)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span tokens
        answer = []
        try:
            for token in self.chat.model.generate_tokens(prompt, max_new_tokens, temperature, top_k, top_p,
                                                         generator=generator, eos_token_ids=self.chat.end_ids):
                token_id = token.item()
                if token_id in self.chat.end_ids:
                    break
                piece = decoder.decode(self.chat.tokenizer.decode_bytes([token_id]))
                answer.append(piece)
                if piece:
                    yield piece
        finally:
            self.messages.append({"role": "assistant", "content": "".join(answer) + decoder.decode(b"", final=True)})
