"""`blurbkit serve`: the HTTP service (FastAPI + uvicorn) over NER and relation models."""

from __future__ import annotations

import argparse
from pathlib import Path

from blurbkit.cli.argtypes import non_negative_float, non_negative_int, port, positive_int


def add_pipeline_arguments(parser: argparse.ArgumentParser, ner_required: bool) -> None:
    """The model options `serve` and `predict` share (blurbkit.Pipeline.load)."""
    parser.add_argument("--ner", nargs="+", type=Path, default=[], required=ner_required, metavar="DIR",
                        help="NER model directories (RUN_DIR/model)")
    parser.add_argument("--relations", nargs="+", type=Path, default=[], metavar="DIR",
                        help="relation model directories; their entity pairs come from the NER models' entities")
    parser.add_argument("--type-map", nargs="+", default=[], metavar="NER_TYPE=TYPE",
                        help="map an NER type to a relation placeholder type (default: upper case; protein -> GENE)")
    parser.add_argument("--relation-types", nargs="+", default=[], metavar="DIR_OR_DATASET=TYPE,TYPE",
                        help="entity types of a relation model whose directory does not record them")
    parser.add_argument("--keep-negative", action="store_true", help="also return pairs predicted as no relation")
    parser.add_argument("--backend", choices=("torch", "onnx", "onnx-int8"), default="torch",
                        help="NER forward pass: torch (exact, default), onnx or onnx-int8 (after `blurbkit export`)")


def pairs_option(values: list[str], what: str) -> dict[str, str]:
    from blurbkit.errors import BlurbkitError

    out = {}
    for value in values:
        key, sep, mapped = value.partition("=")
        if not sep or not key or not mapped:
            raise BlurbkitError(f"{what} takes KEY=VALUE, got {value!r}")
        out[key] = mapped
    return out


def load_pipeline(args: argparse.Namespace, ner: list[Path], **options):
    from blurbkit.inference.pipeline import Pipeline

    relation_types = {k: v.split(",") for k, v in pairs_option(args.relation_types, "--relation-types").items()}
    return Pipeline.load(ner=ner, relations=args.relations, type_map=pairs_option(args.type_map, "--type-map"),
                         relation_types=relation_types, keep_negative=args.keep_negative,
                         backend=getattr(args, "backend", "torch"), **options)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="serve NER + relation models over HTTP (POST /annotate)")
    add_pipeline_arguments(parser, ner_required=True)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=port, default=8080)
    parser.add_argument("--max-body-bytes", type=positive_int, default=8 * 1024 * 1024)
    parser.add_argument("--max-documents", type=positive_int, default=64, help="documents per request")
    parser.add_argument("--max-document-chars", type=positive_int, default=1_000_000)
    parser.add_argument("--max-wait-ms", type=non_negative_float, default=10.0,
                        help="how long the batcher waits for more requests to join a batch")
    parser.add_argument("--max-batch-documents", type=positive_int, default=64, help="documents per gathered batch")
    parser.add_argument("--release-memory-every", type=non_negative_float, default=10.0, metavar="SECONDS",
                        help="hand freed heap pages back to the OS this often, so resident memory stays flat "
                        "under load (default 10; 0: never)")
    parser.add_argument("--graceful-seconds", type=non_negative_int, default=30,
                        help="on shutdown, how long in-flight requests may take to finish")
    parser.set_defaults(func=run)


def check_bindable(host: str, port: int) -> None:
    """The address can be listened on now: a name that does not resolve, an address this machine does
    not have, a port in use or one that needs privileges is refused before anything loads."""
    import socket

    from blurbkit.errors import BlurbkitError

    try:
        # "" is every interface, as uvicorn reads it
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as err:  # socket.gaierror is one
        raise BlurbkitError(f"cannot listen on {host}:{port} ({err.strerror or err})") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from blurbkit.inference.service import Limits, create_app

    check_bindable(args.host, args.port)  # before the models load, in one line (not uvicorn's log lines)
    pipeline = load_pipeline(args, args.ner)
    limits = Limits(max_body_bytes=args.max_body_bytes, max_documents=args.max_documents,
                    max_document_chars=args.max_document_chars, max_wait_ms=args.max_wait_ms,
                    max_batch_documents=args.max_batch_documents, release_memory_seconds=args.release_memory_every)
    uvicorn.run(create_app(pipeline, limits), host=args.host, port=args.port, log_level="info",
                timeout_graceful_shutdown=args.graceful_seconds)
    return 0
