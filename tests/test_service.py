"""The HTTP service in process (fastapi.testclient / httpx ASGI transport): endpoints, limits and
error codes, dynamic batching (concurrent = sequential answers), draining on shutdown, and the
`blurbkit serve` command's defaults."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from blurbkit.cli.main import main
from blurbkit.inference.pipeline import Pipeline
from blurbkit.inference.service import Batcher, Limits, create_app

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_models"
LIMITS = Limits(max_body_bytes=1_200_000, max_documents=4, max_document_chars=1_000_000, max_wait_ms=20)


@pytest.fixture(scope="module")
def tiny_service():
    # fp32: answers batched with other requests' can be compared with sequential ones to 1e-5.
    pipeline = Pipeline.load(ner=[FIXTURES / "ner_bio"], settings={"precision": "fp32"})
    app = create_app(pipeline, LIMITS)
    with TestClient(app) as client:
        yield client


def _check_offsets(request_docs, response_docs):
    for doc, result in zip(request_docs, response_docs, strict=True):
        full = doc["text"] if doc.get("title") is None else f"{doc['title']} {doc['text']}"
        for entity in result["entities"]:
            assert full[entity["start"]:entity["end"]] == entity["text"]


def test_annotate_health_models_and_schema(tiny_service):
    docs = [{"id": "p1", "title": "Naloxone reverses clonidine.", "text": "In rats, β-blockers 😀 were given."},
            {"text": "日本語 aspirin."}, {"id": "empty", "text": ""}]
    response = tiny_service.post("/annotate", json={"documents": docs})
    assert response.status_code == 200
    results = response.json()["documents"]
    assert [r["id"] for r in results] == ["p1", "1", "empty"]
    assert results[0]["entities"] and results[2]["entities"] == [] and results[0]["relations"] == []
    _check_offsets(docs, results)
    assert tiny_service.get("/health").json()["status"] == "ok"
    models = tiny_service.get("/models").json()
    assert models["ner"][0]["entity_types"] == ["Chemical"] and models["relations"] == []
    schema = tiny_service.get("/openapi.json").json()
    assert "/annotate" in schema["paths"] and "DocumentIn" in schema["components"]["schemas"]
    assert tiny_service.post("/annotate", json={"documents": []}).json() == {"documents": []}


@pytest.mark.parametrize(("body", "status", "says"), [
    (b"{not json", 422, "not valid JSON"),
    (b'{"documents": [{"text": "caf\xc3 au lait"}]}', 422, "not valid UTF-8"),
    (b'{"documents": [{"txt": "a"}]}', 422, "documents.0.txt"),
    (b'{"documents": "a"}', 422, "documents"),
    (b"[]", 422, "body"),
    (b'{"documents": [' + b'{"text": "a"},' * 4 + b'{"text": "a"}]}', 413, "limit is 4"),
    (b'{"documents": [{"text": "' + b"a" * 1_000_001 + b'"}]}', 413, "1000001 characters"),
    (b'{"documents": [{"text": "' + b"a" * 1_300_000 + b'"}]}', 413, "over the limit of 1200000 bytes"),
])
def test_bad_requests_get_clear_json_errors_and_the_service_keeps_serving(tiny_service, body, status, says):
    response = tiny_service.post("/annotate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and says in response.json()["error"]
    assert tiny_service.post("/annotate", json={"documents": [{"text": "aspirin"}]}).status_code == 200


def test_a_chunked_body_over_the_limit_is_refused_while_read(tiny_service):
    def chunks():
        yield b'{"documents": [{"text": "'
        for _ in range(30):
            yield b"a" * 50_000
        yield b'"}]}'

    response = tiny_service.post("/annotate", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_one_megabyte_document_is_annotated(tiny_service):
    # 1 MB of text in few words (a word over 100 characters is one [UNK] subword), so that the
    # test measures the service's handling of a big body, not the CPU's speed on 200k words.
    words = [("Aspirin" if n % 2 else "x" * 990) + ("." if n % 7 == 0 else "") for n in range(2_100)]
    text = " ".join(words)[:1_000_000]
    response = tiny_service.post("/annotate", json={"documents": [{"id": "big", "text": text}]})
    assert response.status_code == 200
    entities = response.json()["documents"][0]["entities"]
    assert len(text) == 1_000_000 and entities and entities[-1]["end"] > 990_000
    assert all(text[e["start"]:e["end"]] == e["text"] for e in entities)


def test_concurrent_requests_are_batched_and_answered_as_sequential_ones(tiny_service):
    app = tiny_service.app
    requests = [{"documents": [{"id": f"r{n}", "text": f"Patient {n} took aspirin and {'heparin ' * (n % 5)}daily."}]}
                for n in range(16)]
    sequential = [tiny_service.post("/annotate", json=r).json() for r in requests]
    before = dict(app.state.batcher.stats)

    async def together():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await asyncio.wait_for(asyncio.gather(*(client.post("/annotate", json=r) for r in requests)), 60)

    concurrent = [r.json() for r in asyncio.run(together())]
    assert [_spans(r) for r in concurrent] == [_spans(r) for r in sequential]
    # Padding beside longer requests moves nothing but rounding (a mask leaking padding into
    # attention moves these confidences by 1e-3 and more).
    assert _confidences(concurrent) == pytest.approx(_confidences(sequential), abs=1e-5)
    stats = app.state.batcher.stats
    assert stats["requests"] - before["requests"] == 16
    assert stats["batches"] - before["batches"] < 16 and stats["largest_batch_requests"] > 1


def _confidences(responses):
    return [e["confidence"] for r in responses for d in r["documents"] for e in d["entities"]]


def _spans(response):
    return [(d["id"], [(e["start"], e["end"], e["type"]) for e in d["entities"]]) for d in response["documents"]]


class SlowPipeline:
    """Echoes documents after a pause; fails on the text "boom"."""

    def __init__(self, pause=0.05):
        self.calls, self.pause = [], pause

    def __call__(self, documents):
        self.calls.append(len(documents))
        self.seen = [*getattr(self, "seen", []), *(d["id"] for d in documents)]
        time.sleep(self.pause)
        if any(d["text"] == "boom" for d in documents):
            raise ValueError("boom")
        return [{"id": d["id"], "entities": [], "relations": []} for d in documents]


def test_batcher_drains_its_queue_on_shutdown_and_isolates_a_failing_request():
    pipeline = SlowPipeline()
    batcher = Batcher(pipeline, max_wait_ms=5, max_batch_documents=3)
    batcher.start()

    async def send():
        tasks = [asyncio.ensure_future(batcher.submit([{"id": str(n), "text": "boom" if n == 4 else "ok"}]))
                 for n in range(8)]
        await asyncio.sleep(0.01)
        closing = threading.Thread(target=batcher.close)  # shutdown while requests are queued
        closing.start()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        closing.join()
        return results

    results = asyncio.run(send())
    assert isinstance(results[4], ValueError)
    assert [r[0]["id"] for n, r in enumerate(results) if n != 4] == ["0", "1", "2", "3", "5", "6", "7"]
    assert max(pipeline.calls) <= 3  # batches stay within max_batch_documents


def test_serve_command_binds_loopback_by_default(monkeypatch):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options, app=app))
    assert main(["serve", "--ner", str(FIXTURES / "ner_bio")]) == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8080 and seen["timeout_graceful_shutdown"] == 30
    assert main(["serve", "--ner", str(FIXTURES / "ner_bio"), "--relations", str(FIXTURES / "relation")]) == 2


def test_a_request_whose_client_gave_up_does_not_stop_the_worker():
    pipeline = SlowPipeline(pause=0.5)
    batcher = Batcher(pipeline, max_wait_ms=1)
    batcher.start()

    async def send():
        first = asyncio.ensure_future(batcher.submit([{"id": "slow", "text": "ok"}]))
        for _ in range(500):  # until the worker is computing "slow" (for 0.5 s)
            if pipeline.calls:
                break
            await asyncio.sleep(0.01)
        gone = asyncio.ensure_future(batcher.submit([{"id": "gone", "text": "ok"}]))
        await asyncio.sleep(0.005)
        gone.cancel()  # the client timed out while its request waited
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        await first
        return await asyncio.wait_for(batcher.submit([{"id": "after", "text": "ok"}]), 10)

    assert asyncio.run(send())[0]["id"] == "after"
    batcher.close()
    assert pipeline.seen == ["slow", "after"]  # the abandoned request was not computed


def test_batcher_hands_freed_memory_back_on_its_interval_only():
    releases = []
    clock = {"now": 0.0}

    def release():
        releases.append(clock["now"])
        return True

    batcher = Batcher(SlowPipeline(pause=0), max_wait_ms=0, release_memory_seconds=10, release=release,
                      clock=lambda: clock["now"])
    for now in (1.0, 5.0, 10.5, 12.0, 25.0):
        clock["now"] = now
        batcher._release_memory()
    assert releases == [10.5, 25.0] and batcher.stats["memory_releases"] == 2
    never = Batcher(SlowPipeline(pause=0), release_memory_seconds=0, release=release, clock=lambda: 1e9)
    never._release_memory()
    assert len(releases) == 2


def test_an_idle_batcher_releases_memory_and_a_failing_release_does_not_stop_it():
    calls = []

    def release():
        calls.append(1)
        raise OSError("no")

    batcher = Batcher(SlowPipeline(pause=0), max_wait_ms=1, release_memory_seconds=0.05, release=release)
    batcher.start()
    for _ in range(200):  # no request at all: the idle worker wakes up and releases
        if len(calls) >= 2:
            break
        time.sleep(0.01)
    result = asyncio.run(asyncio.wait_for(batcher.submit([{"id": "after", "text": "ok"}]), 10))
    batcher.close()
    assert len(calls) >= 2 and result[0]["id"] == "after"


RELEASE_CHECK = """
import ctypes, sys
from pathlib import Path
from blurbkit.runtime.allocator import release_free_memory, tune_allocator

def resident_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

if not tune_allocator():
    sys.exit(3)  # not glibc
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
blocks = [libc.malloc(1 << 20) for _ in range(300)]  # 300 MB on the heap (below the raised mmap threshold)
keep = libc.malloc(64)  # a live block above them: the heap top cannot shrink on its own
for block in blocks:
    ctypes.memset(block, 1, 1 << 20)  # make the pages resident
before = resident_mb()
for block in blocks:
    libc.free(block)
kept = resident_mb()
assert release_free_memory()
after = resident_mb()
print(before, kept, after)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_release_free_memory_returns_freed_heap_pages_to_the_kernel():
    """In a fresh process: the allocator settings are process-wide."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", RELEASE_CHECK], capture_output=True, text=True, timeout=60)
    if done.returncode == 3:
        pytest.skip("glibc's mallopt is not available")
    assert done.returncode == 0, done.stderr
    before, kept, after = map(float, done.stdout.split())
    assert before - kept < 50  # the tuned heap keeps what was freed ...
    assert kept - after > 200  # ... until it is handed back
