"""Retrieval-augmented answers: the k stored pairs nearest the question go into the prompt, a chat model writes
the answer from them, and the reply names the pairs it was given.

    hits     = the k stored questions nearest the user's last message (knowledge.py; MiniLM cosines)
    best < threshold  ->  "I don't know", at once: the decoder is not called      (sources: none)
    else              ->  system: the k pairs, and "answer as in the example"     (sources: the k pairs,
                          user: the nearest stored question                        question, answer, score)
                          assistant: its stored answer          (the example exchange)
                          + the conversation, and the decoder's answer

Two users of one Retriever: `python -m minilm.assistant --rag` (RagAssistant below writes the answer) and the
service (`python -m minilm.serve --knowledge FOLDER` sets Service.retriever to it; minilm/serve/chat_job.py
renders the returned conversation and decodes, or sends a declining retriever's text as the answer).

The prompt was chosen by trying several on SmolLM2-135M-Instruct with reworded questions (docs/applications.md
has the table): with the pairs in the system message alone, however worded, it repeated the question, mixed the
answers, or, told it was a customer-service assistant, refused as one. With the nearest pair also shown as an
exchange that already happened, it answers as that exchange did: a small model follows an example far better
than an instruction.
"""

from dataclasses import dataclass

from ..finetune.sft import greedy_reply
from .assistant import UNKNOWN


def system_message(hits) -> str:
    """The pairs retrieval found, best first, and what to do with them (see the module docstring)."""
    return "\n".join(["Answer the user's question from these stored questions and answers:",
                      *(f"- {hit.pair.question} -> {hit.pair.answer}" for hit in hits),
                      "Reply with the answer of the closest stored question, as in the example exchange."])


def grounded(hits, messages: list[dict]) -> list[dict]:
    """The conversation to answer: the system message, the example exchange (the nearest pair), then the user's
    turns; a system message of the client's is left out (the stored answers speak for the company)."""
    best = hits[0].pair
    example = [{"role": "user", "content": best.question}, {"role": "assistant", "content": best.answer}]
    return [{"role": "system", "content": system_message(hits)}, *example,
            *(m for m in messages if m["role"] != "system")]


def source(hit) -> dict:
    """One pair as the answer's "sources" name it (the chat page shows title and text)."""
    return {"id": f"pair-{hit.position}", "title": hit.pair.question, "text": hit.pair.answer,
            "score": round(hit.score, 4)}


class Retriever:
    """retrieve(messages) -> (messages, sources): the Service's RAG hook (minilm/serve/chat_job.py).

    Returns the conversation with the stored pairs in front (grounded), or, when nothing stored is close enough
    (or there is no user message), the decline as a plain string instead of a conversation: the answer itself,
    which the service sends without calling the decoder."""

    def __init__(self, knowledge, encoder, k: int = 3, threshold: float | None = None, decline: str = UNKNOWN):
        knowledge.check_encoder(encoder)
        self.knowledge, self.encoder, self.k, self.decline = knowledge, encoder, k, decline
        self.threshold = knowledge.threshold if threshold is None else threshold

    def search(self, text: str) -> list:
        """The k nearest hits, or [] when the nearest is below the threshold."""
        hits = self.knowledge.search(self.encoder, text, self.k)
        return hits if hits and hits[0].score >= self.threshold else []

    def __call__(self, messages: list[dict]):
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        hits = self.search(question) if question.strip() else []
        if not hits:
            return self.decline, []
        return grounded(hits, messages), [source(hit) for hit in hits]


@dataclass
class RagReply:
    text: str
    sources: list[dict]  # the stored pairs in the prompt, best first; [] when it declined
    prompt_tokens: int = 0  # 0: the decoder was not called


class RagAssistant:
    """question -> RagReply: a Retriever and a chat model (anything with generate_tokens, a tokenizer with a chat
    template, end_ids: minilm/chat/load.py's ChatModel). Greedy, so the same question gets the same answer."""

    def __init__(self, retriever, chat, max_new_tokens: int = 80):
        self.retriever, self.chat, self.max_new_tokens = retriever, chat, max_new_tokens

    def reply(self, question: str) -> RagReply:
        messages, sources = self.retriever([{"role": "user", "content": question}])
        if isinstance(messages, str):  # declined: no decoder
            return RagReply(messages, sources)
        prompt = self.chat.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        return RagReply(generate(self.chat, prompt, self.max_new_tokens), sources, len(prompt))


def generate(chat, prompt: list[int], max_new_tokens: int) -> str:
    """The greedy answer to prompt ids, up to the end-of-turn token; what fits of the context."""
    max_new_tokens = min(max_new_tokens, chat.model.config.block_size - len(prompt))
    return greedy_reply(chat.model, chat.tokenizer, prompt, chat.end_ids, max_new_tokens).strip()


def zero_shot(chat, question: str, max_new_tokens: int = 80) -> str:
    """The chat model's answer with nothing retrieved: the row RAG is measured against."""
    prompt = chat.tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    return generate(chat, prompt, max_new_tokens)
