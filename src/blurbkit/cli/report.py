"""`blurbkit report`: the static site of results stores (leaderboard, model / dataset / study /
comparison pages); `--serve` shows it on 127.0.0.1 (experiments/site/ builds it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blurbkit.cli.argtypes import port


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write the results store as a static site: leaderboard, model, "
                                   "dataset, study and comparison pages (--serve: look at it on 127.0.0.1)")
    parser.add_argument("--store", type=Path, action="append",
                        help="results store; repeat to merge several (default: runs/results.sqlite)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="site folder (default: report/; an earlier "
                        "report there is replaced)")
    parser.add_argument("--data", help="where the runs' test data is, for the paired bootstrap (default: each run's own)")
    parser.add_argument("--replicates", type=int, default=None, help="bootstrap resamples per comparison (default 2000)")
    parser.add_argument("--serve", action="store_true", help="after building, serve the site on 127.0.0.1 until Ctrl-C")
    parser.add_argument("--port", type=port, default=8000, help="with --serve (0: any free port)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from blurbkit.data.load import resolve_data
    from blurbkit.errors import BlurbkitError
    from blurbkit.experiments.compare import REPLICATES
    from blurbkit.experiments.site.build import build_site

    replicates = REPLICATES if args.replicates is None else args.replicates
    if replicates < 100:
        raise BlurbkitError("--replicates must be at least 100 (a 95% interval needs the tails)")
    if args.data:  # a typo would otherwise leave every comparison unpaired, quietly
        resolve_data(args.data)
    if args.serve:  # a port in use is refused before the site is built, not after
        from blurbkit.cli.serve import check_bindable

        check_bindable("127.0.0.1", args.port)
    stores = args.store or [Path("runs/results.sqlite")]
    site = build_site(stores, args.out, data=args.data, replicates=replicates)
    print(f"blurbkit: wrote {len(site.pages)} pages to {args.out} ({len(site.rows)} runs, "
          f"{len(site.entries)} leaderboard rows); open {args.out / 'index.html'}", file=sys.stderr)
    if args.serve:
        serve(args.out, args.port)
    return 0


def make_server(folder: Path, port: int):
    """A threading HTTP server of `folder` on 127.0.0.1 (standard library; quiet)."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from blurbkit.errors import BlurbkitError

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

    try:
        return ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(folder)))
    except OSError as err:
        raise BlurbkitError(f"cannot serve on 127.0.0.1:{port} ({err.strerror or err})") from None


def serve(folder: Path, port: int) -> None:
    """The site over HTTP on 127.0.0.1 until Ctrl-C."""
    server = make_server(folder, port)
    print(f"blurbkit: serving {folder} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
