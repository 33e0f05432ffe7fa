"""Safe file helpers: atomic writes, strict UTF-8 reads, hashing."""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from blurbkit.errors import BlurbkitError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_temp(path: Path, make: Any, what: str = "output") -> Any:
    """The temporary sibling of `path` (mkstemp or mkdtemp), its folder made if missing; a folder
    that cannot be written is one line naming `path`, not a traceback naming the temporary name."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return make(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise BlurbkitError(f"cannot write the {what} here ({err.strerror or err})", path=path) from None


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    if path.is_dir():
        raise BlurbkitError("is a directory; give a file name", path=path)
    encoding = None if "b" in mode else "utf-8"
    if path.exists() and not path.is_file():
        # A device, pipe or socket (/dev/stdout, a FIFO): written as a stream. A rename would put a
        # regular file where it was, and a reader of the pipe would wait forever.
        with open(path, mode, encoding=encoding) as handle:
            yield handle
        return
    if path.is_symlink():
        path = path.resolve()  # the link stays a link: the file it names is the one replaced
    fd, tmp = _make_temp(path, tempfile.mkstemp)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name, then rename it into place."""
    path = Path(path)
    tmp = Path(_make_temp(path, tempfile.mkdtemp))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _temp_name(path: Path) -> re.Pattern[str]:
    """The names atomic_write/atomic_dir give their temporary siblings of `path` (mkstemp/mkdtemp:
    8 random characters between our prefix and suffix)."""
    return re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp")


def clean_stale(path: str | Path) -> list[Path]:
    """Remove what a killed atomic_write/atomic_dir left beside `path`: its temporary siblings and
    the `.NAME.old` of an interrupted replace. When the kill came between the two renames of a
    replace (`path` gone, `.NAME.old` still there), the old version is put back first. Only names
    of our own pattern are touched; `path` must not be written by a live process meanwhile.
    Returns what was removed."""
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        return []
    old = path.with_name(f".{path.name}.old")
    if old.exists() and not path.exists():
        os.replace(old, path)
    pattern = _temp_name(path)
    removed = [entry for entry in parent.iterdir() if entry == old or pattern.fullmatch(entry.name)]
    for entry in removed:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    return removed


def check_writable(path: str | Path, what: str = "output", file: bool = False, folder: bool = False) -> None:
    """Fail now, in one line, if `path` (a file or directory to be written atomically) cannot be:
    its parent is made if missing and a small temporary file is written, synced and removed there.
    file: `path` is to be a file, so an existing directory there is refused too; folder: the reverse."""
    path = Path(path)
    if file and path.is_dir():
        raise BlurbkitError(f"the {what} is a directory; give a file name", path=path)
    if folder and path.exists() and not path.is_dir():
        raise BlurbkitError(f"the {what} is a file; give a folder", path=path)
    if path.is_symlink() and not path.exists():
        raise BlurbkitError(f"the {what} is a link to nothing ({os.readlink(path)}); give a real path", path=path)
    existing = next(folder for folder in path.parents if folder.exists())
    if not existing.is_dir():
        raise BlurbkitError(f"cannot write the {what} here ({existing} is a file, not a folder)", path=path)
    fd, tmp = _make_temp(path, tempfile.mkstemp, what)
    try:
        os.write(fd, b"\0" * 4096)  # a full disk shows here, not hours later
        os.fsync(fd)
    except OSError as err:
        raise BlurbkitError(f"cannot write the {what} here ({err.strerror or err})", path=path) from None
    finally:
        os.close(fd)
        os.unlink(tmp)


def check_replaceable(path: str | Path, marker: str, what: str, flag: str = "--out") -> None:
    """Only nothing, an empty folder or an earlier `what` (a folder holding `marker`) may be
    replaced by a new one: a user's folder or file given by mistake is never deleted."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / marker).exists())):
        raise BlurbkitError(f"exists and is not {what}; choose a new or empty {flag}", path=path)
    check_writable(path, flag)


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text)


def write_csv(path: str | Path, rows: Iterable[Sequence[Any]]) -> None:
    """A CSV file (the csv module's dialect: quoted where needed, CRLF line ends), written atomically."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_write(path) as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    count = 0
    with atomic_write(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def check_input_file(path: str | Path) -> Path:
    """`path` is an existing file (not a folder): else one line saying which."""
    path = Path(path)
    if not path.exists():
        raise BlurbkitError("file not found", path=path)
    if path.is_dir():
        raise BlurbkitError("is a directory, not a file", path=path)
    return path


def decode_utf8(raw: bytes, path: str | Path) -> str:
    """`raw` as UTF-8, or one line naming the file, line and byte where it is not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise BlurbkitError(f"byte 0x{raw[err.start]:02x} is not valid UTF-8", path=path, line=line) from None


def read_lines(path: str | Path) -> list[str]:
    """Read a UTF-8 text file (gzip if it ends in .gz) into lines without newlines.

    Missing files, empty files and non-UTF-8 bytes become one-line errors naming the file and line.
    A leading UTF-8 byte order mark is dropped (editors on Windows add one; it is not text), and
    CRLF line ends read as LF, so every reader sees the same lines whatever wrote the file.
    """
    path = check_input_file(path)
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        except (OSError, EOFError, zlib.error) as err:  # truncated or not gzip at all
            raise BlurbkitError(f"not a readable gzip file ({err})", path=path) from None
    else:
        try:
            raw = path.read_bytes()  # also a named pipe (`--input <(zcat ...)`)
        except OSError as err:
            raise BlurbkitError(f"cannot read ({err.strerror or err})", path=path) from None
    text = decode_utf8(raw, path).removeprefix("\ufeff")
    if not text.strip():
        raise BlurbkitError("file is empty", path=path)
    text = text.replace("\r\n", "\n")
    if text.endswith("\r"):  # a last line cut from its CRLF's LF: the CR ends the line, it is not text
        text = text[:-1]
    return text.split("\n")


def unicode_problem(text: str) -> str | None:
    """Why `text` is not Unicode text that UTF-8 can carry (None: it is). A JSON escape such as
    ``\\ud800`` without its pair decodes to a lone surrogate, which tokenizers and writers reject."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"holds a lone surrogate (U+{ord(text[err.start]):04X} at character {err.start}), which is not text"
    return None


# A JSON escape of a surrogate (D800-DFFF): only text holding one can decode to a lone surrogate,
# so only such text pays for the check (the file itself was strict UTF-8).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _json_problem(text: str, obj: Any) -> str | None:
    if not _SURROGATE_ESCAPE.search(text):
        return None
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "a string holds a lone surrogate escape (\\ud800-\\udfff without its pair), which is not text"
    except RecursionError:
        return "not valid JSON (nested too deeply)"
    return None


def json_loads(text: str, **options: Any) -> Any:
    """json.loads with what it raises besides JSONDecodeError as one: nesting deeper than Python's
    stack (RecursionError), and an integer of more digits than Python converts (ValueError)."""
    try:
        return json.loads(text, **options)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None
    except json.JSONDecodeError:
        raise
    except ValueError as err:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise json.JSONDecodeError(f"a number too long to read, {str(err).rsplit(':', 1)[-1].split(';')[0].strip()}", text, 0) from None


def parse_jsonl(lines: Iterable[str], path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; any line that is not a JSON object (or holds
    a string that is not text) is a one-line error naming the file and line. Works on a stream, so
    corpora need not fit in memory."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json_loads(line)
        except json.JSONDecodeError as err:
            raise BlurbkitError(f"not valid JSON ({err.msg})", path=path, line=number) from None
        if not isinstance(obj, dict):
            raise BlurbkitError("expected a JSON object", path=path, line=number)
        problem = _json_problem(line, obj)
        if problem:
            raise BlurbkitError(problem, path=path, line=number)
        yield number, obj


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [obj for _, obj in parse_jsonl(read_lines(path), path)]


def read_json(path: str | Path) -> Any:
    """A JSON file; a key given twice in one object is refused (json would keep the last silently)."""
    text = "\n".join(read_lines(path))
    try:
        obj = json_loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise BlurbkitError(f"not valid JSON ({err.msg})", path=path, line=err.lineno) from None
    except _DuplicateKey as err:
        raise BlurbkitError(f"key {err.args[0]!r} is given twice in one object", path=path) from None
    problem = _json_problem(text, obj)
    if problem:
        raise BlurbkitError(problem, path=path)
    return obj


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
