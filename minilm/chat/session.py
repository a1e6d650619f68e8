"""A conversation with a chat model: the messages so far, rendered by the model's template at every turn,
and the answer streamed as it is decoded.

Each turn renders the whole conversation (system message, every user and assistant message, then the
opening of a new assistant turn) and decodes until the model writes its end-of-turn token. When the
conversation no longer fits the context, the oldest exchanges are dropped (and the caller is told).

The KV cache outlives a turn: it holds the keys and values of the conversation so far, so the next turn
reads only what is new (the end of the answer, the user's message) instead of the whole conversation
again. The cache is kept up to the first id where the new rendering differs from what it holds (the
template may write the answer's text with other tokens than the model chose; dropped turns and a new
system message change it earlier).
"""

import codecs

import torch

from common.errors import UserError

from ..model import KVCache

from .load import ChatModel


class ChatSession:
    def __init__(self, chat: ChatModel, system: str | None = None):
        self.chat = chat
        self.system = system  # None: the template's own default system message, if it has one
        self.messages: list[dict] = []  # user and assistant turns, oldest first
        self.dropped = 0  # exchanges dropped so far to fit the context
        self.reuse_cache = True  # False: every turn reads the whole conversation again (to compare)
        self.cache: KVCache | None = None  # the keys and values of cached_ids
        self.cached_ids: list[int] = []

    def reset(self) -> None:
        self.messages, self.dropped = [], 0
        self.cache, self.cached_ids = None, []

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
        prompt_ids = self.prompt_ids(max_new_tokens)
        cache = self.cache_for(prompt_ids)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span tokens
        answer, sampled = [], []
        try:
            for token in self.chat.model.generate_tokens(torch.tensor([prompt_ids]), max_new_tokens, temperature,
                                                         top_k, top_p, generator=generator,
                                                         eos_token_ids=self.chat.end_ids, kv_cache=cache):
                sampled.append(token.item())
                if sampled[-1] in self.chat.end_ids:
                    break
                piece = decoder.decode(self.chat.tokenizer.decode_bytes(sampled[-1:]))
                answer.append(piece)
                if piece:
                    yield piece
        except GeneratorExit:  # the caller stopped reading at a yield: the cache is whole
            raise
        except BaseException:  # e.g. Ctrl-C inside a forward pass, which may have filled some layers only
            cache = None
            raise
        finally:
            self.messages.append({"role": "assistant", "content": "".join(answer) + decoder.decode(b"", final=True)})
            self.cache = cache if self.reuse_cache else None
            self.cached_ids = (prompt_ids + sampled)[:cache.next_position] if self.cache is not None else []

    def cache_for(self, prompt_ids: list[int]) -> KVCache:
        """The cache of the conversation so far, cut to where prompt_ids first differ from the ids it holds
        (and short of the prompt's last id: the model must read at least one token to give logits)."""
        if self.cache is None:
            return KVCache(self.chat.model.config.n_layer)
        same = 0
        limit = min(len(self.cached_ids), len(prompt_ids) - 1)
        while same < limit and self.cached_ids[same] == prompt_ids[same]:
            same += 1
        self.cache.crop(same)
        return self.cache
