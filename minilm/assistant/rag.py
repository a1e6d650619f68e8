"""Retrieval-augmented answers: the k stored pairs nearest the question go into the prompt, a chat model writes
the answer from them, and the reply names the pairs it was given.

    hits     = the k stored questions nearest the user's last message (knowledge.py; MiniLM cosines)
    best < threshold  ->  "I don't know", at once: the decoder is not called   (sources: none)
    else              ->  [system: PREAMBLE + the k pairs, best first]       (sources: the k pairs,
                          + the conversation, and the decoder's answer         question, answer, score)

Two users of one Retriever: `python -m minilm.assistant --rag` (RagAssistant below writes the answer) and the
service (`python -m minilm.serve --knowledge FOLDER` sets Service.retriever to it; minilm/serve/chat_job.py
renders the returned conversation and decodes, or sends a declining retriever's text as the answer).

The wording of the system message was chosen by trying several on SmolLM2-135M-Instruct with reworded
questions (docs/applications.md): a list of "Q: ... A: ..." pairs under "answer using these" made it copy a
question or mix answers; the pairs as facts, with the best one named, made it give the stored answer.
"""

from dataclasses import dataclass

import torch

from .assistant import UNKNOWN

PREAMBLE = ("You are a customer-service assistant. Answer the user's question with the stored answer below. "
            "Use its words; do not add facts of your own.")


def system_message(hits) -> str:
    """The pairs retrieval found, best first, as the model reads them (see the module docstring)."""
    best, others = hits[0], hits[1:]
    lines = [PREAMBLE, "", f"Stored answer: {best.pair.answer}", f"(to the question: {best.pair.question})"]
    if others:
        lines += ["", "Other stored pairs, less close:"]
        lines += [f"- {hit.pair.question} -> {hit.pair.answer}" for hit in others]
    return "\n".join(lines)


def source(hit) -> dict:
    """One pair as the answer's "sources" name it (the chat page shows title and text)."""
    return {"id": f"pair-{hit.position}", "title": hit.pair.question, "text": hit.pair.answer,
            "score": round(hit.score, 4)}


class Retriever:
    """retrieve(messages) -> (messages, sources): the Service's RAG hook (minilm/serve/chat_job.py).

    Returns the conversation with the stored pairs as a system message in front, or, when nothing stored is close
    enough (or there is no user message), the decline as a plain string instead of a conversation: the answer
    itself, which the service sends without calling the decoder."""

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
        context = {"role": "system", "content": system_message(hits)}
        conversation = [m for m in messages if m["role"] != "system"]  # the store speaks for the company
        return [context, *conversation], [source(hit) for hit in hits]


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


@torch.no_grad()
def generate(chat, prompt: list[int], max_new_tokens: int) -> str:
    """The greedy answer to prompt ids, up to the end-of-turn token; what fits of the context."""
    max_new_tokens = min(max_new_tokens, chat.model.config.block_size - len(prompt))
    ids = []
    for token in chat.model.generate_tokens(torch.tensor([prompt]), max_new_tokens, 0.0,
                                            eos_token_ids=chat.end_ids):  # each (1, 1)
        if int(token) in chat.end_ids:
            break
        ids.append(int(token))
    return chat.tokenizer.decode(ids).strip()


def zero_shot(chat, question: str, max_new_tokens: int = 80) -> str:
    """The chat model's answer with nothing retrieved: the row RAG is measured against."""
    prompt = chat.tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    return generate(chat, prompt, max_new_tokens)
