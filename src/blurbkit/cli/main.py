"""The `blurbkit` command: each sub-command lives in its own module of this package.

A module registers itself with ``register(subparsers)`` and sets ``func`` on its parser.
Heavy imports (torch, transformers) happen inside the command functions so that
`blurbkit --help` and the data commands stay fast.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import errno
import importlib
import io
import os
import signal
import sys
import threading

from blurbkit.errors import BlurbkitError

# Order = order in `blurbkit --help`.
COMMAND_MODULES = [
    "prepare",
    "datasets",
    "evaluate",
    "score",
    "finetune",
    "benchmark",
    "status",
    "store",
    "report",
    "compare",
    "predict",
    "serve",
    "export",
    "ablate",
    "stilt",
    "analyze",
    "probe",
    "cv",
    "cost",
    "vocab",
    "corpus",
    "pretrain",
    "bench",
    "doctor",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a refused option is one line like every other error (not the usage block
    first): "blurbkit: error: finetune: argument --lr: ..."; sub-command parsers inherit the class."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("blurbkit").strip()
        self.exit(2, f"blurbkit: error: {command + ': ' if command else ''}{message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="blurbkit",
        description="Biomedical language models: vocabularies, pretraining, fine-tuning, BLURB scoring.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"blurbkit.cli.{name}").register(subparsers)
    return parser


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so half-written temporary files are removed on the way out."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_unwinds():
    """While a command runs, SIGTERM raises Terminated (main thread only: signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _unicode_safe_stdout() -> None:
    """A non-UTF-8 locale (LANG=en_US.ISO-8859-1, or C with Python's UTF-8 mode off) cannot encode a
    table's em dash or a prediction's alpha: print stopped with a UnicodeEncodeError traceback halfway
    through. Piped or redirected output is data, so it is UTF-8 like every file blurbkit writes; a
    terminal keeps its encoding and shows what it cannot as escapes. (stderr escapes already.)"""
    stream = sys.stdout
    try:
        if codecs.lookup(stream.encoding or "ascii").name == "utf-8":
            return
    except (LookupError, AttributeError):
        pass
    with contextlib.suppress(AttributeError, ValueError, OSError, io.UnsupportedOperation):
        if stream.isatty():
            stream.reconfigure(errors="backslashreplace")
        else:
            stream.reconfigure(encoding="utf-8")


# OSErrors that mean a path given is not usable as given (not an I/O fault of the machine)
USER_PATH_ERRORS = {errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EROFS}


def main(argv: list[str] | None = None) -> int:
    _unicode_safe_stdout()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub at run time: models come from local directories
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with _sigterm_unwinds():
            result = args.func(args)
            sys.stdout.flush()  # a full disk behind stdout shows here, not as a traceback at exit
    except Terminated:
        print("blurbkit: terminated", file=sys.stderr)
        return 143
    except BlurbkitError as err:
        print(f"blurbkit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("blurbkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `blurbkit ... | head`: the reader left; not an error
        _discard_stdout()
        return 0
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" ({err.filename})" if err.filename else ""
            print(f"blurbkit: error: cannot write the output: no space left on the device{where}", file=sys.stderr)
            _discard_stdout()
            return 2
        if err.errno not in USER_PATH_ERRORS or not err.filename:
            raise  # an I/O fault or a bug keeps its traceback
        # A path the user gave that cannot be read or written (permissions, a folder in its place ...)
        # where no check ran before: one line naming it (a rename's target, not its temporary source).
        print(f"blurbkit: error: {err.filename2 or err.filename}: {err.strerror or err}", file=sys.stderr)
        return 2
    return int(result or 0)


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of what is still buffered cannot
    fail again (it would print 'Exception ignored ...' after our one line)."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
