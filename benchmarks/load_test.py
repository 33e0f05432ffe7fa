"""Load test of `blurbkit serve` on loopback: requests/s, sentences/s, p50/p95/p99 latency and errors at
1, 8 and 32 concurrent clients, then a soak at 8 clients with the server's resident memory at its
start and end,
sampled every 5 s (flat: the peaks of the soak's last quarter no more than --rss-bound-mb above
those of the quarter after its first minute).

Every phase is bounded: a fixed number of requests and a time limit, whichever comes first; the
soak by --soak-seconds. Only loopback URLs are accepted.

    # start a server from model directories, test it, stop it (SIGTERM: graceful)
    python benchmarks/load_test.py --ner runs/bc5chem/model --relations runs/chemprot/model
    # or test a running server (its pid for the memory readings)
    python benchmarks/load_test.py --url http://127.0.0.1:8080 --server-pid 1234

Documents: --pubtator FILE (its titles and abstracts) or built-in synthetic abstracts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx

from blurbkit.fileio import write_json

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WORDS = ["aspirin", "heparin", "warfarin", "clonidine", "naloxone", "induced", "hepatitis", "renal", "failure", "patients", "treated", "with", "the", "of", "and", "in", "was", "were", "dose", "receptor", "kinase", "inhibition", "protein", "expression", "levels", "increased", "decreased", "mice", "rats", "study", "results", "suggest", "that", "CYP2C9", "TNF-α", "β-blocker", "mg/kg"]


def synthetic_documents(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for n in range(count):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))).capitalize() + "."
                     for _ in range(rng.randint(4, 10))]
        docs.append({"id": str(n), "title": sentences[0], "text": " ".join(sentences[1:])})
    return docs


def pubtator_documents(path: Path, limit: int) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    docs, title = [], None
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if "|t|" in line[:40]:
                title = line.rstrip("\n").split("|t|", 1)[1]
            elif "|a|" in line[:40] and title is not None:
                pmid, text = line.rstrip("\n").split("|a|", 1)
                docs.append({"id": pmid, "title": title, "text": text})
                title = None
                if len(docs) >= limit:
                    break
    return docs


def resident_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def sample_rss(pid: int | None, samples: list[tuple[float, float]], every: float = 5.0) -> None:
    """(seconds since the soak began, resident MB) every few seconds, until cancelled."""
    began = time.monotonic()
    while True:
        value = resident_mb(pid)
        if value is not None:
            samples.append((round(time.monotonic() - began, 1), value))
        await asyncio.sleep(every)


def rss_verdict(samples: list[tuple[float, float]], bound_mb: float) -> dict:
    """Flat means no upward trend after the first minute (caches and allocator arenas warm up): the
    highest reading of the soak's last quarter is at most `bound_mb` above the highest reading of
    the quarter that follows that first minute. Highest, not last: a server that hands memory back
    periodically (serve --release-memory-every) has a sawtooth, and a leak shows in its peaks."""
    if not samples:
        return {"samples": 0}
    end = samples[-1][0]
    warm = [(t, mb) for t, mb in samples if t >= 60] or samples[-1:]
    span = max(end - warm[0][0], 1e-9)
    early = [mb for t, mb in warm if t <= warm[0][0] + span / 4]
    late = [mb for t, mb in warm if t >= end - span / 4]
    growth = max(late) - max(early)
    return {"samples": len(samples), "first_mb": samples[0][1], "at_60s_mb": warm[0][1],
            "early_max_mb": max(early), "late_max_mb": max(late), "min_mb": min(mb for _, mb in samples),
            "max_mb": max(mb for _, mb in samples), "last_mb": samples[-1][1], "growth_mb": round(growth, 1),
            "bound_mb": bound_mb, "flat": growth <= bound_mb, "series": samples}


def machine() -> dict:
    """The CPU class every number here belongs to."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return {"cpu": model, "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
            "avx2": "avx2" in flags, "load_average": os.getloadavg()}


def count_sentences(doc: dict) -> int:
    from blurbkit.inference.sentences import split_sentences

    return sum(len(split_sentences(text)) for text in (doc.get("title") or "", doc["text"]))


async def phase(client: httpx.AsyncClient, docs: list[dict], concurrency: int, requests: int, time_limit: float,
                docs_per_request: int) -> dict:
    """`requests` POST /annotate calls by `concurrency` clients, stopped at `time_limit` seconds."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sentences = 0
    issued = 0
    deadline = time.monotonic() + time_limit
    sentence_counts = [count_sentences(d) for d in docs]

    async def worker() -> None:
        nonlocal issued, sentences
        while issued < requests and time.monotonic() < deadline:
            start_index = (issued * docs_per_request) % len(docs)
            issued += 1
            batch = [docs[(start_index + k) % len(docs)] for k in range(docs_per_request)]
            began = time.perf_counter()
            try:
                response = await client.post("/annotate", json={"documents": batch},
                                             timeout=max(1.0, deadline - time.monotonic() + 30))
                ok = response.status_code == 200
                key = None if ok else f"HTTP {response.status_code}"
            except httpx.HTTPError as err:
                ok, key = False, type(err).__name__
            latencies.append(time.perf_counter() - began)
            if ok:
                sentences += sum(sentence_counts[(start_index + k) % len(docs)] for k in range(docs_per_request))
            else:
                errors[key] = errors.get(key, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    done = len(latencies)
    ms = sorted(1000 * x for x in latencies)

    def pct(p: float) -> float | None:
        return round(ms[min(len(ms) - 1, int(p / 100 * len(ms)))], 1) if ms else None

    return {"concurrency": concurrency, "requests": done, "seconds": round(wall, 2),
            "requests_per_s": round(done / wall, 2) if wall else None,
            "sentences_per_s": round(sentences / wall, 1) if wall else None,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
            "errors": sum(errors.values()), "error_kinds": errors}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(args: argparse.Namespace):
    """Start `blurbkit serve` on loopback when model directories are given; stop it gracefully."""
    if not args.ner:
        yield args.url, args.server_pid
        return
    port = free_port()
    command = [sys.executable, "-m", "blurbkit", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--ner", *args.ner, *(["--relations", *args.relations] if args.relations else [])]
    log = open(args.server_log, "w") if args.server_log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + args.startup_seconds
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with code {process.returncode} (see --server-log)")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not answer /health within {args.startup_seconds} s")
            time.sleep(0.5)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log is not subprocess.DEVNULL:
            log.close()


async def run(args: argparse.Namespace, url: str, pid: int | None) -> dict:
    docs = pubtator_documents(args.pubtator, args.documents) if args.pubtator else synthetic_documents(args.documents)
    report: dict = {"machine_at_start": machine(), "url": url, "documents": len(docs), "docs_per_request": args.docs_per_request,
                    "sentences_per_document": round(statistics.fmean(count_sentences(d) for d in docs), 1),
                    "rss_mb_before": resident_mb(pid), "phases": []}
    limits = httpx.Limits(max_connections=max(args.concurrency) + 4)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:
        await phase(client, docs, 1, 3, 30, args.docs_per_request)  # warm-up, not reported
        for concurrency in args.concurrency:
            result = await phase(client, docs, concurrency, args.requests, args.time_limit, args.docs_per_request)
            report["phases"].append(result)
            print(json.dumps(result), flush=True)
        if args.soak_seconds > 0:
            report["rss_mb_soak_start"] = resident_mb(pid)
            samples: list[tuple[float, float]] = []
            sampler = asyncio.create_task(sample_rss(pid, samples))
            soak = await phase(client, docs, 8, 10**9, args.soak_seconds, args.docs_per_request)
            sampler.cancel()
            report["soak"] = soak | {"rss_mb_start": report["rss_mb_soak_start"], "rss_mb_end": resident_mb(pid)}
            report["soak"]["rss"] = rss_verdict(samples, args.rss_bound_mb)
            print(json.dumps({"soak": report["soak"]}), flush=True)
        health = (await client.get("/health")).json()
    report["server_batching"] = health.get("batching")
    report["rss_mb_after"] = resident_mb(pid)
    report["load_average_at_end"] = os.getloadavg()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="a running server (loopback only)")
    parser.add_argument("--server-pid", type=int, help="its process id, for the resident-memory readings")
    parser.add_argument("--ner", nargs="+", help="start a server with these NER model directories")
    parser.add_argument("--relations", nargs="+", help="... and these relation model directories")
    parser.add_argument("--server-log", help="write the started server's output here")
    parser.add_argument("--startup-seconds", type=float, default=120)
    parser.add_argument("--pubtator", type=Path, help="documents from a PubTator file (.gz too)")
    parser.add_argument("--documents", type=int, default=200, help="distinct documents to cycle through")
    parser.add_argument("--docs-per-request", type=int, default=1)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=200, help="requests per phase (at most)")
    parser.add_argument("--time-limit", type=float, default=60, help="seconds per phase (at most)")
    parser.add_argument("--soak-seconds", type=float, default=600, help="soak at 8 clients; 0: none")
    parser.add_argument("--rss-bound-mb", type=float, default=50,
                        help="the soak's memory is flat when its late peaks are at most this much above its early ones (default 50)")
    parser.add_argument("--json-out", type=Path, help="write the whole report here")
    args = parser.parse_args()
    host = urlparse(args.url).hostname
    if not args.ner and host not in LOOPBACK:
        parser.error(f"--url must be a loopback address ({', '.join(sorted(LOOPBACK))}), got {host}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with server(args) as (url, pid):
        report = asyncio.run(run(args, url, pid))
    print(json.dumps(report, indent=2))
    if args.json_out:
        write_json(args.json_out, report)
    errors = sum(p["errors"] for p in report["phases"]) + report.get("soak", {}).get("errors", 0)
    flat = report.get("soak", {}).get("rss", {}).get("flat", True)
    print(f"errors: {errors}; resident memory during the soak: {'flat' if flat else 'GREW beyond the bound'}", file=sys.stderr)
    return 0 if errors == 0 and flat else 1


if __name__ == "__main__":
    sys.exit(main())
