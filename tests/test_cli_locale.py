"""Output in a non-UTF-8 locale (a CI machine or a user with LANG=en_US.ISO-8859-1; C with Python's
UTF-8 mode off): non-Latin text, a table's em dash or the help's ± never stop a command with a
UnicodeEncodeError. PYTHONIOENCODING stands in for the locale: no locale needs to be installed."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from blurbkit.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
NER = REPO / "tests" / "fixtures" / "v0_1_models" / "ner_bio"


def _blurbkit(args: list[str], encoding: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), PYTHONIOENCODING=encoding, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "blurbkit", *args], env=env, capture_output=True, timeout=240)


@pytest.mark.slow  # a process that loads a model
def test_predictions_piped_from_a_latin1_locale_are_utf8(tmp_path):
    text = "Selegiline and α-synuclein — Müller"
    inputs = tmp_path / "in.txt"
    inputs.write_text(text + "\n", encoding="utf-8")
    done = _blurbkit(["predict", "--model", str(NER), "--input", str(inputs)], "latin-1")
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")[-1500:]
    assert f'"input": "{text}"' in done.stdout.decode("utf-8")


def test_help_with_plus_minus_in_an_ascii_locale():
    done = _blurbkit(["cv", "--help"], "ascii")
    assert done.returncode == 0 and "mean ± std" in done.stdout.decode("utf-8"), done.stderr[-1500:]


class _Terminal(io.TextIOWrapper):
    def isatty(self) -> bool:
        return True


def test_a_terminal_keeps_its_encoding_and_escapes_what_it_cannot_show(monkeypatch):
    raw = io.BytesIO()
    terminal = _Terminal(raw, encoding="latin-1")
    monkeypatch.setattr(sys, "stdout", terminal)
    cli_main._unicode_safe_stdout()
    print("Müller — α")
    terminal.flush()
    assert raw.getvalue() == "Müller \\u2014 \\u03b1\n".encode("latin-1")
