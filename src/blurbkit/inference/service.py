"""The HTTP service over a `Pipeline` (FastAPI; `blurbkit serve` runs it under uvicorn).

    POST /annotate   {"documents": [{"id", "title", "text"}, ...]} -> {"documents": [{"id", "entities",
                     "relations"[, "warnings"]}, ...]}  (offsets as in blurbkit.Pipeline)
    GET  /health     liveness and batching counters
    GET  /models     the loaded models (labels, entity types, the run's test score when the model
                     directory sits in its run directory)
    GET  /docs, /openapi.json

Limits, each a JSON error ``{"error": "..."}``: a request body over ``max_body_bytes`` -> 413 (the
Content-Length is checked before reading, a chunked body while reading); more than
``max_documents`` documents or a document over ``max_document_chars`` characters -> 413; a body that
is not JSON, not UTF-8 or not of the request schema -> 422. An error in one request's documents
never stops the service.

Dynamic batching: requests go into a queue; one worker thread takes the first waiting request,
gathers whatever else arrives within ``max_wait_ms`` (10 ms by default, up to
``max_batch_documents`` documents) and runs them as one pipeline call (one forward pass per model,
length-sorted batches), then hands each request its own results. If a combined batch fails, its
requests are re-run one by one so the failure stays with the request that caused it. On shutdown
the queue is drained before the worker stops (uvicorn first waits for the in-flight requests).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import unicode_problem
from blurbkit.runtime.allocator import release_free_memory

log = logging.getLogger("blurbkit.serve")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_documents: int = 64
    max_document_chars: int = 1_000_000
    max_wait_ms: float = 10.0
    max_batch_documents: int = 64
    release_memory_seconds: float = 10.0  # free heap pages go back to the kernel this often (0: never)


# ---- schema (what /openapi.json shows) ----------------------------------------------------------

class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, description="the caller's id (default: its position in the request)")
    title: str | None = Field(None, description="optional; offsets then count in title + ' ' + text")
    text: str = Field("", description="the text (an abstract, or any text)")


class AnnotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn]


class EntityOut(BaseModel):
    id: str
    start: int = Field(description="character (code point) offset into the full text")
    end: int
    text: str
    type: str
    confidence: float
    model: str


class RelationOut(BaseModel):
    id: str
    label: str
    probability: float
    head: str = Field(description="id of entity 1")
    tail: str = Field(description="id of entity 2")
    model: str


class DocumentOut(BaseModel):
    id: str
    entities: list[EntityOut]
    relations: list[RelationOut]
    warnings: list[str] = []


class AnnotateResponse(BaseModel):
    documents: list[DocumentOut]


# ---- dynamic batching ---------------------------------------------------------------------------

class ShuttingDown(RuntimeError):
    """A request that came after the batcher closed (503: try again at another instance)."""


class Batcher:
    """Concurrent requests -> one pipeline call per gathered batch, on one worker thread."""

    def __init__(self, pipeline: Any, max_wait_ms: float = 10.0, max_batch_documents: int = 64,
                 release_memory_seconds: float = 10.0, release: Any = release_free_memory,
                 clock: Any = time.monotonic) -> None:
        self.pipeline = pipeline
        self.max_wait = max_wait_ms / 1000
        self.max_batch_documents = max_batch_documents
        # Resident memory stays flat under load only if freed pages go back (runtime/allocator.py).
        self.release_every, self.release, self.clock = release_memory_seconds, release, clock
        self._released = clock()
        self._queue: queue.Queue[tuple[list[dict], concurrent.futures.Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="blurbkit-batcher", daemon=True)
        self._closed = False
        self.stats = {"batches": 0, "requests": 0, "documents": 0, "largest_batch_requests": 0, "memory_releases": 0}

    def start(self) -> None:
        self._thread.start()

    async def submit(self, documents: list[dict]) -> list[dict]:
        if self._closed:
            raise ShuttingDown("the service is shutting down")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((documents, future))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Finish every queued request, then stop the worker."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            try:  # idle: wake up now and then, so memory freed by the last burst goes back too
                item = self._queue.get(timeout=self.release_every or None)
            except queue.Empty:
                self._release_memory()
                continue
            if item is None:
                return
            items, documents, stop = [item], len(item[0]), False
            deadline = time.monotonic() + self.max_wait
            while documents < self.max_batch_documents:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    extra = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if extra is None:
                    stop = True
                    break
                items.append(extra)
                documents += len(extra[0])
            try:
                self._process(items)
            except Exception:  # e.g. the event loop of a waiting request is gone: keep serving
                log.exception("batch failed")
            self._release_memory()
            if stop:
                return

    def _release_memory(self) -> None:
        if self.release_every > 0 and self.clock() - self._released >= self.release_every:
            try:
                if self.release():
                    self.stats["memory_releases"] += 1
            except Exception:  # never let housekeeping stop the worker
                log.exception("releasing free memory failed")
            self._released = self.clock()

    def _process(self, items: list[tuple[list[dict], concurrent.futures.Future]]) -> None:
        # A request whose client went away (its future cancelled) is not computed.
        items = [item for item in items if item[1].set_running_or_notify_cancel()]
        if items:
            self._compute(items)

    def _compute(self, items: list[tuple[list[dict], concurrent.futures.Future]]) -> None:
        documents = [doc for docs, _ in items for doc in docs]
        try:
            results = self.pipeline(documents)
        except Exception as err:
            if len(items) > 1:  # find the request at fault: the others still get their answers
                for item in items:
                    self._compute([item])
                return
            items[0][1].set_exception(err)
            return
        self.stats["batches"] += 1
        self.stats["requests"] += len(items)
        self.stats["documents"] += len(documents)
        self.stats["largest_batch_requests"] = max(self.stats["largest_batch_requests"], len(items))
        start = 0
        for docs, future in items:
            future.set_result(results[start:start + len(docs)])
            start += len(docs)


# ---- the request size limit, before FastAPI reads the body -------------------------------------

class BodyLimit:
    """Pure ASGI: 413 for a body over `limit` bytes, by its Content-Length or while reading it;
    422 for a body that is not UTF-8 (JSON is UTF-8; FastAPI would answer a bare 400)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(send)
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._too_large(send)
                return
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            await self._send(send, 422, f"the body is not valid UTF-8 (byte {err.start})")
            return

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Any) -> None:
        await self._send(send, 413, f"request body over the limit of {self.limit} bytes")

    @staticmethod
    async def _send(send: Any, status: int, message: str) -> None:
        payload = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(pipeline: Any, limits: Limits | None = None) -> Any:
    """The ASGI app serving `pipeline` (a blurbkit.Pipeline), wrapped in the body-size limit."""
    limits = limits or Limits()
    batcher = Batcher(pipeline, limits.max_wait_ms, limits.max_batch_documents, limits.release_memory_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            await asyncio.to_thread(batcher.close)

    app = FastAPI(title="blurbkit", version=_version(), lifespan=lifespan,
                  description="Biomedical named entities and relations from blurbkit models.")
    app.state.batcher, app.state.limits, app.state.pipeline = batcher, limits, pipeline

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in err.errors()]
        decoding = any(e.get("type") == "json_invalid" for e in err.errors())
        first = details[0] if details else {"where": "body", "problem": "invalid"}
        what = "the body is not valid JSON" if decoding else f"{first['where']}: {first['problem']}"
        return _error(422, what, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail))

    @app.post("/annotate", response_model=AnnotateResponse, responses={
        413: {"description": "body, document count or a document over the limit"},
        422: {"description": "not JSON, not UTF-8, or not of the request schema"}})
    async def annotate(request: AnnotateRequest) -> Any:
        """Entities and relations of each document, in request order."""
        documents = request.documents
        if len(documents) > limits.max_documents:
            return _error(413, f"{len(documents)} documents in one request; the limit is {limits.max_documents}")
        inputs = []
        for n, doc in enumerate(documents):
            size = len(doc.text) + len(doc.title or "")
            if size > limits.max_document_chars:
                return _error(413, f"document {n}: {size} characters; the limit is {limits.max_document_chars}")
            for name in ("id", "title", "text"):
                problem = unicode_problem(getattr(doc, name) or "")
                if problem:  # the tokenizer (or the JSON response) would fail on it: a 500
                    return _error(422, f"body.documents.{n}.{name}: {problem}")
            item = {"id": doc.id if doc.id is not None else str(n), "text": doc.text}
            if doc.title is not None:
                item["title"] = doc.title
            inputs.append(item)
        if not inputs:
            return {"documents": []}
        try:
            results = await batcher.submit(inputs)
        except BlurbkitError as err:
            return _error(422, str(err))
        except ShuttingDown as err:  # only this one: any other RuntimeError is the service's fault
            return _error(503, str(err))
        except Exception:  # the detail (and its traceback) stays in the log, not in the response
            log.exception("annotate failed")
            return _error(500, "internal error while annotating (logged by the service)")
        return {"documents": results}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(pipeline.ner) + len(pipeline.relations), "batching": dict(batcher.stats)}

    @app.get("/models")
    async def models() -> dict[str, Any]:
        return pipeline.describe()

    app.add_middleware(_BodyLimitMiddleware, limit=limits.max_body_bytes)
    return app


class _BodyLimitMiddleware(BodyLimit):
    """BodyLimit in the form app.add_middleware takes (outermost: it runs before routing)."""


def _version() -> str:
    from blurbkit import __version__

    return __version__
