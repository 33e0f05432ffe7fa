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
