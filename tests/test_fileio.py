"""fileio.atomic_write on what is not a plain file: a pipe is written as a stream (never replaced by
a regular file), a symbolic link keeps being a link to the file it names."""

from __future__ import annotations

import os
import stat
import threading

from blurbkit.fileio import write_text


def test_a_pipe_is_written_as_a_stream_and_stays_a_pipe(tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text(encoding="utf-8")))
    reader.start()
    write_text(fifo, "tagged\n")
    reader.join(timeout=10)
    assert received == ["tagged\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fifo"]  # no temporary file left beside it


def test_a_link_stays_a_link_and_its_file_is_replaced(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old", encoding="utf-8")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target) and target.read_text(encoding="utf-8") == "new"


def test_lines_read_the_same_whatever_ends_them(tmp_path):
    """LF, CRLF, a byte order mark, and a last line whose CRLF lost its LF (a hypothesis find: the CR
    stayed in a HoC sentence id) all read as the same lines."""
    from blurbkit.fileio import read_lines

    expected = read_lines(_write(tmp_path / "lf.tsv", b"a\tb\nc\td\n"))
    assert expected == ["a\tb", "c\td", ""]  # split at each line end: a final one leaves an empty last line
    for name, raw in (("crlf", b"a\tb\r\nc\td\r\n"), ("bom", b"\xef\xbb\xbfa\tb\nc\td\n"), ("cut", b"a\tb\r\nc\td\r")):
        assert read_lines(_write(tmp_path / f"{name}.tsv", raw)) == expected[: 2 if name == "cut" else None], name


def _write(path, raw: bytes):
    path.write_bytes(raw)
    return path
