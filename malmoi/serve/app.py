"""The FastAPI app: routes over the "use a run" layer, one worker per model, limits, auth, metrics.

    GET  /                 the web page (public)            GET  /health        503 loading, 200 ready (public)
    GET  /v1/models        OpenAI-shaped model list         POST /v1/tokenize   tokens, ids, masks, offsets
    POST /v1/classify      labels and probabilities         POST /v1/generate   text, or server-sent events
    POST /v1/tag           entities with character spans    POST /v1/answer     answer spans of a context
    POST /v1/completions   OpenAI completions (GPT runs)    GET  /metrics       Prometheus text
    POST /v1/inspect       every stage of one sentence      GET  /openapi.json  the schema

Errors are ``{"error": {"code", "message"}}`` with the status ``serve/statuses.py`` gives the code.
"""
# No ``from __future__ import annotations``: FastAPI reads the request models from the route
# signatures, and those are classes built per app (``serve/schemas.py``), not module names.
import asyncio
import hmac
import json
import threading
import time
import uuid
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from malmoi.errors import MalmoiError
from malmoi.serve.metrics import ServerMetrics
from malmoi.serve.registry import ModelSpec, ServedModel, load_models
from malmoi.serve.schemas import build_schemas, sampling_options
from malmoi.serve.settings import ServeSettings
from malmoi.serve.statuses import status_of
from malmoi.serve.worker import ModelWorker

RETRY_AFTER_S = 1
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ErrorDetail(BaseModel):
    code: str | None
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    """Every error the API answers: malmoi's code (``docs/errors.md``) and one line."""

    error: ErrorDetail


def _errors(*statuses: int) -> dict:
    """OpenAPI entries for the error statuses a route can answer."""
    said = {401: "missing or wrong API key", 404: "no model of that name", 413: "body too large",
            422: "a field is missing, malformed, out of its limits, or not for this model",
            429: "the model's queue is full (see Retry-After)", 503: "models still loading",
            504: "the request took longer than the server's timeout"}
    return {s: {"model": ErrorResponse, "description": said[s]} for s in statuses}


MODEL_ERRORS = _errors(401, 404, 413, 422, 429, 503, 504)
STREAMS = {200: {"content": {"text/event-stream": {}}, "description": "JSON, or server-sent events with stream"}}


class ServerState:
    """What the routes share: the models once loaded, their workers, the metrics."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.metrics = ServerMetrics()
        self.models: dict[str, ServedModel] = {}
        self.workers: dict[str, ModelWorker] = {}
        self.ready = threading.Event()
        self.load_error: MalmoiError | None = None
        self.routes: set[str] = set()
        """The app's paths: metrics label a request by its path only if it is one (fuzzers invent many)."""

    def route(self, path: str) -> str:
        return path if path in self.routes else "other"

    def start(self, models: dict[str, ServedModel]) -> None:
        self.models = models
        self.workers = {name: ModelWorker(m, self.settings, self.metrics) for name, m in models.items()}
        self.ready.set()

    def model(self, name: str) -> tuple[ServedModel, ModelWorker]:
        if not self.ready.is_set():
            raise MalmoiError("E611", "the models are still loading")
        if name not in self.models:
            raise MalmoiError("E604", f"no model named {name!r} (served: {', '.join(self.models)})")
        return self.models[name], self.workers[name]

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()


def create_app(specs: list[ModelSpec] | None = None, settings: ServeSettings | None = None, *,
               models: dict[str, ServedModel] | None = None) -> FastAPI:
    """The app for ``specs`` (loaded in the background once the app starts, so that ``/health``
    answers 503 meanwhile) or for already loaded ``models``."""
    settings = settings or ServeSettings()
    state = ServerState(settings)
    if models is not None:
        state.start(models)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import torch

        torch.set_num_threads(settings.torch_threads())
        if models is None:
            threading.Thread(target=_load, args=(state, specs or []), daemon=True).start()
        yield
        state.stop()

    app = FastAPI(title="malmoi", summary="Korean-first NLP models over HTTP", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.malmoi = state
    app.add_middleware(BodyLimit, limit=settings.max_body)
    app.add_middleware(RequestMetrics, state=state)
    _add_error_handlers(app, state)
    _add_routes(app, state, [Depends(_auth(settings.api_key))] if settings.api_key else [])
    state.routes.update(route.path for route in app.routes)
    return app


def _load(state: ServerState, specs: list[ModelSpec]) -> None:
    try:
        state.start(load_models(specs))
    except MalmoiError as e:  # /health says so
        state.load_error = e


# ------------------------------------------------------------------------------------- auth, limits


def _auth(key: str):
    bearer = HTTPBearer(auto_error=False, description="The server's API key (--api-key or MALMOI_API_KEY).")

    async def require_key(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
        given = credentials.credentials.encode() if credentials else b""
        if not hmac.compare_digest(given, key.encode()):  # constant time: no timing hint at the key
            raise MalmoiError("E609", "missing API key" if credentials is None else "wrong API key")

    return require_key


class BodyLimit:
    """413 for a body past ``limit`` bytes, by Content-Length or as a chunked body arrives."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.limit:
            message = f"the request body is over {self.limit} bytes" if length.isdigit() else "bad Content-Length"
            return await _send_json(send, 413 if length.isdigit() else 400, _error_body("E606", message))
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # FastAPI passes its own HTTPException through body parsing
                raise HTTPException(413, f"the request body is over {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


class RequestMetrics:
    """Requests, statuses and latency per route (unknown paths counted as one route)."""

    def __init__(self, app, state: ServerState):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = self.state.route(scope["path"])
        started, status = time.perf_counter(), 500

        async def sent(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            self.state.metrics.requests.labels(route, str(status)).inc()
            self.state.metrics.latency.labels(route).observe(time.perf_counter() - started)


async def _send_json(send, status: int, body: dict) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


# ------------------------------------------------------------------------------------- errors


def _error_body(code: str | None, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def _error_response(e: MalmoiError, route: str, state: ServerState) -> JSONResponse:
    status = status_of(e.code)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status in (429, 503):
        headers["Retry-After"] = str(RETRY_AFTER_S)
    state.metrics.errors.labels(route, e.code).inc()
    return JSONResponse(_error_body(e.code, e.message), status_code=status, headers=headers)


def _field(error: dict) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p != "body"]
    return ".".join(loc) or "body"


def _add_error_handlers(app: FastAPI, state: ServerState) -> None:
    def route(request: Request) -> str:
        return state.route(request.url.path)

    @app.exception_handler(MalmoiError)
    async def malmoi_error(request: Request, e: MalmoiError):
        return _error_response(e, route(request), state)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        errors = e.errors()
        first = errors[0] if errors else {}
        field = _field(first)
        message = f"{field}: {first.get('msg', 'invalid')}" if first else "invalid request"
        state.metrics.errors.labels(route(request), "E610").inc()
        return JSONResponse(_error_body("E610", message, field=field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        if e.status_code == 400:  # FastAPI could not read the body at all (not UTF-8, say)
            return JSONResponse(_error_body("E610", "body: not readable as JSON in UTF-8", field="body"), 422)
        code = "E606" if e.status_code == 413 else None
        return JSONResponse(_error_body(code, str(e.detail)), status_code=e.status_code, headers=e.headers)

    @app.exception_handler(Exception)
    async def crashed(request: Request, e: Exception):  # a bug: say so without a traceback to the client
        state.metrics.errors.labels(route(request), "internal").inc()
        return JSONResponse(_error_body(None, f"internal error: {type(e).__name__}"), status_code=500)


# ------------------------------------------------------------------------------------- routes


def _add_routes(app: FastAPI, state: ServerState, guard: list) -> None:
    schemas = build_schemas(state.settings)

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        html = resources.files("malmoi.serve").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, media_type="text/html; charset=utf-8")

    @app.get("/health", tags=["server"], responses={503: {"description": "models loading, or loading failed"}})
    async def health() -> JSONResponse:
        """200 once every model is loaded, 503 while they load (or if loading failed)."""
        if state.load_error is not None:
            return JSONResponse({"status": "failed", "error": str(state.load_error)}, status_code=503)
        if not state.ready.is_set():
            return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
        return JSONResponse({"status": "ok", "models": list(state.models)})

    @app.get("/openapi.json", include_in_schema=False, dependencies=guard)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/metrics", tags=["server"], dependencies=guard, response_class=Response, responses=_errors(401))
    async def metrics() -> Response:
        """Prometheus text: requests, errors, queue time, batch sizes, latency, time to first token."""
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models", tags=["models"], dependencies=guard, responses=_errors(401, 503))
    async def list_models() -> dict:
        """Every served model with its task, preset, labels and routes (OpenAI's list shape)."""
        if not state.ready.is_set():
            raise MalmoiError("E611", "the models are still loading")
        return {"object": "list", "data": [m.card() for m in state.models.values()]}

    @app.post("/v1/tokenize", tags=["models"], dependencies=guard, responses=MODEL_ERRORS)
    async def tokenize(request: schemas.Tokenize) -> dict:
        """Tokens, ids, type ids, mask and character offsets (n-grams with spans for an n-gram run)."""
        from malmoi.inspect.tokens import tokenize as view

        served, worker = state.model(request.model)
        shown = await worker.call(lambda: view(served.loaded, request.text))
        return {"model": served.name, "text": request.text, **shown}

    @app.post("/v1/inspect", tags=["models"], dependencies=guard,
              responses={200: {"content": {"text/html": {}}, "description": "the record, or its page"},
                         **MODEL_ERRORS})
    async def inspect(request: schemas.Inspect):
        """Every stage of one sentence through the model (``malmoi inspect``): the record as JSON, or
        with ``"format": "html"`` the same self-contained page ``--html`` writes."""
        from malmoi.inspect import inspect_text

        served, worker = state.model(request.model)
        record = await worker.call(lambda: inspect_text(served.loaded, request.text, pair=request.pair,
                                                        top_k=request.top_k, max_tokens=request.max_tokens,
                                                        steps=request.steps))
        if request.format == "html":
            from malmoi.inspect.page import render_html

            return HTMLResponse(render_html(record), media_type="text/html; charset=utf-8")
        return record

    @app.post("/v1/classify", tags=["models"], dependencies=guard, responses=MODEL_ERRORS)
    async def classify(request: schemas.Classify) -> dict:
        """The label, its probability and every label's probability for each text."""
        served, worker = state.model(request.model)
        if not served.classifies:
            raise MalmoiError("E605", f"{served.name!r} is a {served.meta.get('task')!r} run, not a classifier")
        probs = await worker.classify(list(request.texts))
        labels = served.loaded.labels
        return {"model": served.name, "predictions": [
            {"text": text, "label": labels[int(p.argmax())], "score": float(p.max()),
             "probabilities": {lab: float(v) for lab, v in zip(labels, p)}} for text, p in zip(request.texts, probs)]}

    @app.post("/v1/tag", tags=["models"], dependencies=guard, responses=MODEL_ERRORS)
    async def tag(request: schemas.Tag) -> dict:
        """The entities of each text (``malmoi predict`` on a tagger run): text, type and character span."""
        from dataclasses import asdict

        served, worker = state.model(request.model)
        if not served.tags:
            raise MalmoiError("E605", f"{served.name!r} is a {served.meta.get('task')!r} run, not a tagger")
        taggings = await worker.call(lambda: served.loaded.tag(list(request.texts)))
        return {"model": served.name, "results": [
            {"text": t.text, "entities": [asdict(e) for e in t.entities]} for t in taggings]}

    @app.post("/v1/answer", tags=["models"], dependencies=guard, responses=MODEL_ERRORS)
    async def answer(request: schemas.Answer) -> dict:
        """Each question's answer as a span of the context (``malmoi answer``): text, start, end, score."""
        served, worker = state.model(request.model)
        if not served.answers:
            raise MalmoiError("E605", f"{served.name!r} is a {served.meta.get('task')!r} run, not a "
                                      "question-answering one")
        found = await worker.call(lambda: served.loaded.answer(list(request.questions), request.context))
        return {"model": served.name, "answers": [a.to_dict() for a in found]}

    @app.post("/v1/generate", tags=["models"], dependencies=guard, responses={**STREAMS, **MODEL_ERRORS})
    async def generate(request: schemas.Generate):
        """A GPT run's continuation of ``prompt`` or a seq2seq run's answer to it; ``stream`` sends
        server-sent events ``data: {"text": PIECE}`` and a last one with ``finish_reason``."""
        served, worker = state.model(request.model)
        options = _generation_options(served, request)
        limit = request.max_new_tokens
        if request.stream:
            start = lambda: served.loaded.stream(request.prompt, max_new_tokens=limit, **options)  # noqa: E731
            return _event_stream(_plain_events(worker.stream(start), state, served.name))
        answer = await worker.call(lambda: served.loaded.generate([request.prompt], max_new_tokens=limit, **options)[0])
        body = {"model": served.name, "text": answer.text, "finish_reason": _finish(served, answer, limit)}
        if answer.matched is not None:
            body.update(matched=answer.matched, similarity=answer.similarity)
        return body

    @app.post("/v1/completions", tags=["openai"], dependencies=guard, responses={**STREAMS, **MODEL_ERRORS})
    async def completions(request: schemas.Completions):
        """OpenAI's completions for GPT runs: temperature 0 decodes greedily, otherwise samples."""
        served, worker = state.model(request.model)
        if not served.continues_prompt:
            raise MalmoiError("E605", f"{served.name!r} does not continue text; completions need a GPT (lm) run")
        options = ({"greedy": True} if request.temperature == 0 else
                   {"temperature": request.temperature, "top_p": request.top_p})
        if request.seed is not None:
            options["seed"] = request.seed
        head = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": served.name}
        if request.stream:
            if not isinstance(request.prompt, str):
                raise MalmoiError("E605", "streaming completions take one prompt")
            start = lambda: served.loaded.stream(request.prompt, max_new_tokens=request.max_tokens, **options)  # noqa
            return _event_stream(_openai_events(worker.stream(start), state, served.name, head))
        prompts = [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)
        answers = await worker.call(lambda: served.loaded.generate(prompts, max_new_tokens=request.max_tokens,
                                                                    **options))
        used = [len(served.loaded.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        made = sum(len(a.tokens) for a in answers)
        return {**head, "choices": [{"text": a.text, "index": i, "logprobs": None,
                                     "finish_reason": _openai_finish(_finish(served, a, request.max_tokens))}
                                    for i, a in enumerate(answers)],
                "usage": {"prompt_tokens": sum(used), "completion_tokens": made, "total_tokens": sum(used) + made}}


def _generation_options(served: ServedModel, request) -> dict:
    """The request's decoding options, checked against what the family can do before it runs."""
    if not served.generates:
        raise MalmoiError("E605", f"{served.name!r} is a {served.meta.get('task')!r} run; it does not generate text")
    options = sampling_options(request)
    if request.beams is not None:
        options["beams"] = request.beams
    if not getattr(served.loaded, "samples", False):
        extra = sorted(set(options) - {"beams", "greedy"})
        if extra or options.get("greedy") is False:
            raise MalmoiError("E605", f"{served.name!r} decodes greedily or with beams; it takes no "
                                      f"{', '.join(extra) or 'greedy=false'}")
        options.pop("greedy", None)
    else:
        served.loaded.settings(max_new_tokens=request.max_new_tokens, **options)  # refuses bad combinations now
    return options


def _finish(served: ServedModel, answer, limit: int | None) -> str:
    limit = limit or getattr(served.loaded, "DEFAULT_NEW_TOKENS", None)
    return "length" if served.streams_tokens and limit and len(answer.tokens) >= limit else "eos"


def _openai_finish(reason: str) -> str:
    return "stop" if reason == "eos" else "length"


# ------------------------------------------------------------------------------------- streams


def _sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _event_stream(events) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream; charset=utf-8", headers=SSE_HEADERS)


async def _pieces(job, state: ServerState, model: str):
    """(kind, value) events of a stream job until it ends; the job is abandoned if the client goes."""
    started, first = time.perf_counter(), True
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(job.pieces.get(), state.settings.timeout)
            except asyncio.TimeoutError:
                yield "error", MalmoiError("E608", f"no text for {state.settings.timeout:g} s")
                return
            if kind == "piece" and first:
                state.metrics.first_token.labels(model).observe(time.perf_counter() - started)
                first = False
            if kind == "piece":
                state.metrics.generated.labels(model).inc()
            yield kind, value
            if kind != "piece":
                return
    finally:
        job.cancelled.set()  # a disconnected client stops the generation


def _error_event(e: BaseException) -> str:
    if isinstance(e, MalmoiError):
        return _sse({"error": {"code": e.code, "message": e.message}}, "error")
    return _sse({"error": {"code": None, "message": f"internal error: {type(e).__name__}"}}, "error")


async def _plain_events(job, state, model):
    async for kind, value in _pieces(job, state, model):
        if kind == "piece":
            yield _sse({"text": value})
        elif kind == "end":
            yield _sse({"text": "", "finish_reason": value})
        else:
            yield _error_event(value)


async def _openai_events(job, state, model, head):
    async for kind, value in _pieces(job, state, model):
        if kind == "error":
            yield _error_event(value)
            return
        finish = _openai_finish(value) if kind == "end" else None
        yield _sse({**head, "choices": [{"text": value if kind == "piece" else "", "index": 0, "logprobs": None,
                                         "finish_reason": finish}]})
    yield "data: [DONE]\n\n"


# ------------------------------------------------------------------------------------- processes

CONFIG_ENV = "MALMOI_SERVE_CONFIG"


def config_json(specs: list[ModelSpec], settings: ServeSettings) -> str:
    """What ``app_from_env`` rebuilds the app from in each of several worker processes."""
    from dataclasses import asdict

    return json.dumps({"specs": [[s.name, str(s.run)] for s in specs], "settings": asdict(settings)})


def app_from_env() -> FastAPI:
    """The app factory uvicorn calls in each worker process (``--workers N``)."""
    import os
    from pathlib import Path

    config = json.loads(os.environ[CONFIG_ENV])
    specs = [ModelSpec(name, Path(run)) for name, run in config["specs"]]
    # loaded before this process accepts: the others answer meanwhile
    return create_app(settings=ServeSettings(**config["settings"]), models=load_models(specs))
