"""The routes of chat: POST /v1/chat/completions (OpenAI's protocol, openai_chat.py) and GET /chat, the page
that talks to it (static/chat.html).

    stream false   queue the chat, wait, answer chat.completion
    stream true    queue the chat, wait for its first event (a refusal still gets its 4xx), then send
                   chat.completion.chunk events as the worker decodes: the role (and any RAG sources), each piece
                   of text, the finish_reason, the usage if stream_options.include_usage asks, and [DONE]
"""

import json
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, StreamingResponse

from .limits import RequestError
from .openai_chat import ChatCompletionRequest, ChunkWriter, check_request, completion, error_body
from .service import Service

CHAT_PATH = "/v1/chat/completions"
PAGE = Path(__file__).parent / "static" / "chat.html"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy may hold the chunks back


def chat_routes(service: Service) -> APIRouter:
    router = APIRouter()

    @router.post(CHAT_PATH, responses={200: {"content": {"text/event-stream": {}}, "description":
                                             'OpenAI\'s chat.completion, or with "stream": true its chunks'}})
    async def chat_completions(request: ChatCompletionRequest):
        if (problem := check_request(request)) is not None:
            raise RequestError(400, *problem)
        served = service.pick(request.model, "chat")
        if not request.stream:
            return completion(served.name, await service.answer("chat", request))
        include_usage = request.stream_options is not None and request.stream_options.include_usage
        events = await service.events("chat", request)
        return StreamingResponse(_chunks(events, ChunkWriter(served.name, include_usage)),
                                 media_type="text/event-stream", headers=STREAM_HEADERS)

    return router


def page_routes() -> APIRouter:
    """GET /chat: open, as /docs is (a browser cannot send a bearer token with a page load); the page asks for
    the key when the API answers 401, and sends it with each request."""
    router = APIRouter()
    page = PAGE.read_text(encoding="utf-8")

    @router.get("/chat", response_class=HTMLResponse)
    async def chat_page():
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    return router


async def _chunks(events, writer: ChunkWriter):
    """The worker's events as OpenAI's server-sent chunks."""
    try:
        async for kind, data in events:
            if kind == "start":
                yield _sse(writer.first(data["sources"]))
            elif kind == "delta":
                yield _sse(writer.chunk({"content": data["text"]}))
            elif kind == "done":
                yield _sse(writer.chunk({}, data["finish_reason"]))
                if writer.include_usage:
                    yield _sse(writer.usage_chunk(data))
            else:  # an error after the 200 went out: said in the stream, as OpenAI does
                yield _sse(error_body(data.status, data.message, data.field, data.code))
        yield b"data: [DONE]\n\n"
    finally:
        await events.aclose()  # now, not when collected: the worker stops at its next token


def _sse(body: dict) -> bytes:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()
