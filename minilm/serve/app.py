"""The FastAPI app: its routes, the bearer-token check, CORS, the body-size limit and one error format.

    POST /v1/generate  /v1/classify  /v1/tag  /v1/fill-mask  /v1/embed     (token required, if one is set)
    POST /v1/chat/completions                                              (OpenAI's protocol; chat_routes.py)
    GET  /v1/models    /metrics                                            (token required, if one is set)
    GET  /health       /chat  /docs  /openapi.json                         (open)

Every refusal has the same body, {"detail": "<what is wrong and how to fix it>", "field": "<field or null>"},
whether it comes from validation (422), a limit, the queue (503) or the token check (401). On
/v1/chat/completions it has OpenAI's, {"error": {"message", "type", "param", "code"}}, and what is 422
elsewhere is 400 there (openai_chat.py), so OpenAI's clients read it as they read OpenAI's own.
"""

import hmac
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from .body_guard import BodyGuard
from .chat_routes import CHAT_PATH, chat_routes, page_routes
from .limits import RequestError
from .metrics import MetricsMiddleware
from .openai_chat import error_body, field_errors, openai_status
from .schemas import (ClassifyRequest, ClassifyResponse, EmbedRequest, EmbedResponse, ErrorBody, FillMaskRequest,
                      FillMaskResponse, GenerateRequest, GenerateResponse, Health, ModelList, TagRequest, TagResponse)
from .service import Service

ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 404, 413, 422, 503, 504)}  # for /docs
ENCODER_ROUTES = {"classify": (ClassifyRequest, ClassifyResponse), "tag": (TagRequest, TagResponse),
                  "fill-mask": (FillMaskRequest, FillMaskResponse), "embed": (EmbedRequest, EmbedResponse)}


def create_app(service: Service) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app):
        service.start()
        yield
        service.stop()  # finish what is queued, within --shutdown_timeout, then return

    app = FastAPI(title="minilm", summary="GPT and BERT models behind HTTP (docs/serving.md)", lifespan=lifespan)
    app.state.service = service
    routers = [_api_routes(service), chat_routes(service), _open_routes(service), page_routes()]
    for router in routers[:2]:
        app.include_router(router, dependencies=[Depends(_token_check(service.config.api_key))], responses=ERRORS)
    for router in routers[2:]:
        app.include_router(router)
    _add_error_handlers(app)
    app.add_middleware(BodyGuard, max_bytes=service.config.max_body_bytes, body=error_json)  # each wraps the last
    if service.config.cors_origin:
        app.add_middleware(CORSMiddleware, allow_origins=service.config.cors_origin, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    paths = {route.path for router in routers for route in router.routes} | {app.docs_url, app.openapi_url}
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, paths=paths)  # outermost: counts everything
    return app


def _api_routes(service: Service) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/generate", response_model=GenerateResponse,
                 responses={200: {"content": {"text/event-stream": {}},
                                  "description": 'with "stream": true, events token ... done'}})
    async def generate(request: GenerateRequest):
        if request.stream:
            return StreamingResponse(await service.stream(request), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await service.answer("generate", request)

    for endpoint, (request_model, response_model) in ENCODER_ROUTES.items():
        router.add_api_route(f"/v1/{endpoint}", _answering(service, endpoint, request_model), methods=["POST"],
                             response_model=response_model, name=endpoint.replace("-", "_"))

    @router.get("/v1/models", response_model=ModelList)
    async def models():  # OpenAI's list shape, so its clients' models.list() reads it
        return {"object": "list", "data": [served.describe() for served in service.models.values()]}

    @router.get("/metrics", response_class=Response)
    async def metrics():
        return Response(service.metrics.text(), media_type=CONTENT_TYPE_LATEST)

    return router


def _answering(service: Service, endpoint: str, request_model):
    """The route of one endpoint: FastAPI reads the annotation and validates the body against request_model."""
    async def answer(request: request_model):
        return await service.answer(endpoint, request)

    return answer


def _open_routes(service: Service) -> APIRouter:
    router = APIRouter()

    @router.get("/health", response_model=Health)
    async def health():  # for a load balancer's liveness probe: answers while the workers compute
        return {"status": "ok", "models": len(service.models), "queue_depth": service.depth}

    return router


def _token_check(api_key: str | None):
    """A dependency that lets a request through only with `Authorization: Bearer <api_key>` (none: all)."""
    bearer = HTTPBearer(auto_error=False, description="the server's --api_key")

    async def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)):
        if api_key is None:
            return
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, api_key.encode()):  # constant time: no timing hints at the key
            raise RequestError(401, "Authorization", "Authorization: missing or wrong bearer token; send the "
                               "header 'Authorization: Bearer <key>' with the server's --api_key",
                               {"WWW-Authenticate": "Bearer"})

    return check


def error_json(path: str, status: int, message: str, field: str | None, code: str | None = None) -> tuple[dict, int]:
    """(body, status) of a refusal, in the shape of the endpoint at path: OpenAI's on chat, minilm's elsewhere."""
    if path == CHAT_PATH:
        return error_body(openai_status(status), message, field, code), openai_status(status)
    return {"detail": message, "field": field}, status


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError):
        body, status = error_json(request.url.path, error.status, error.message, error.field, error.code)
        return JSONResponse(body, status_code=status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        body, status = validation_body(error.errors())
        if request.url.path == CHAT_PATH and body["field"] is not None:  # name each field whole: messages[0].role
            body["detail"], body["field"] = field_errors(error.errors())
        return JSONResponse(*error_json(request.url.path, status, body["detail"], body["field"]))

    @app.exception_handler(HTTPException)  # FastAPI's own: an unknown path (404), a wrong method (405)
    async def http_error(request: Request, error: HTTPException):
        body, status = error_json(request.url.path, error.status_code, str(error.detail), None)
        return JSONResponse(body, status_code=status, headers=error.headers)


def validation_body(errors: list[dict]) -> tuple[dict, int]:
    """pydantic's errors as one message naming each field: ("texts[0]: Input should be a valid string", 422).
    A body that is not JSON at all (or not UTF-8) is a 400."""
    if any(e["type"] == "json_invalid" for e in errors):
        reason = next(e for e in errors if e["type"] == "json_invalid").get("ctx", {}).get("error", "")
        return {"detail": f"request body: not valid JSON ({reason}); send a JSON object", "field": None}, 400
    if [e["loc"] for e in errors] == [("body",)]:  # not an object: a list, a number, or no JSON content type
        return {"detail": "request body: expected a JSON object, sent with 'Content-Type: application/json'",
                "field": None}, 422
    by_field = {}  # field -> its errors (a union, e.g. a text or a pair, reports one per member)
    for e in errors:
        by_field.setdefault(_field_name(e["loc"]), []).append(e)
    parts = []
    for field, field_errors in by_field.items():
        # "not a list" from the union member that does not fit says less than what the one that fits found
        specific = [e for e in field_errors if not e["type"].endswith("_type")] or field_errors
        parts.append(f"{field}: {', or '.join(dict.fromkeys(e['msg'] for e in specific))}")
    return {"detail": "; ".join(parts), "field": next(iter(by_field))}, 422


def _field_name(loc) -> str:
    """("body", "texts", 0, "str") -> "texts[0]": a list index closes the name (what follows it is pydantic's
    name for a member of a union); the whole body is "body"."""
    name = ""
    for part in loc[1:]:
        if isinstance(part, int):
            return f"{name}[{part}]"
        name = f"{name}.{part}" if name else part
    return name or "body"
