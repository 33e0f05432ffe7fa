"""Text normalisation, a rule-based sentence splitter and the keys used for dedupe and test filtering.

The sentence splitter is deliberately simple and dependency-free (no model, no nltk data):
a boundary is a run of ``.``, ``!`` or ``?`` (optionally followed by a closing quote or bracket)
then whitespace, unless

* the word before the stop is a known abbreviation (``e.g.``, ``et al.``, ``Fig.``, ``vs.``, ...),
  a single letter (initials, ``p. syringae``) or a number with a decimal continuation;
* in cased text, the next character is a lower-case letter (``approx. three``).

Lower-cased text (SumPubMed) has no capitals to go by, so there only the abbreviation rules apply.
Line breaks inside a text are kept as hard boundaries when the source puts one sentence per line.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WS = re.compile(r"\s+")
_CANDIDATE = re.compile(r"([.!?]+[\"'\u201d\u2019)\]]*)(\s+)")
_ABBREVIATIONS = frozenset(
    ["e.g", "i.e", "al", "fig", "figs", "vs", "etc", "approx", "ca", "cf", "no", "nos", "vol", "dr", "mr", "mrs", "ms", "prof", "st", "sp", "spp", "ssp", "var", "resp", "ref", "refs", "eq", "eqs", "tab", "suppl", "min", "max", "mol", "wt", "inc", "ltd", "co", "corp", "dept", "univ", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "ph.d", "ph", "m.d", "b.i.d", "t.i.d", "q.i.d", "i.v", "i.m", "i.p", "s.c", "p.o", "u.s", "e.coli"]
)
# Abbreviations that practically never end a sentence; the others (etc., min., al., ...) end one
# when cased text goes on with a capital letter.
_NEVER_FINAL = frozenset(["e.g", "i.e", "fig", "figs", "vs", "cf", "dr", "mr", "mrs", "ms", "prof", "st", "no", "nos", "ref", "refs", "eq", "eqs", "approx", "ca", "sp", "spp", "ssp", "var"])
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def normalize(text: str) -> str:
    """Unicode NFKC (full-width forms, ligatures, non-breaking spaces) and single spaces."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def _is_cased(text: str) -> bool:
    letters = [ch for ch in text[:2000] if ch.isalpha()]
    return bool(letters) and sum(ch.isupper() for ch in letters) >= max(1, len(letters) // 100)


def split_sentences(text: str) -> list[str]:
    """Split one paragraph (already normalised or not) into sentences; see the module docstring."""
    sentences: list[str] = []
    for line in text.split("\n"):
        line = normalize(line)
        if line:
            sentences.extend(_split_line(line, _is_cased(text)))
    return sentences


def _split_line(line: str, cased: bool) -> list[str]:
    out: list[str] = []
    start = 0
    for match in _CANDIDATE.finditer(line):
        end = match.end(1)
        nxt = match.end()
        if nxt >= len(line):
            break
        before = line[start : match.start(1)].rsplit(" ", 1)[-1].lower().strip("([{\"'")
        next_char = line[nxt]
        if match.group(1).startswith(".") and before:
            abbreviation = before.rstrip(".")
            if abbreviation in _NEVER_FINAL or (
                abbreviation in _ABBREVIATIONS and not (cased and (next_char.isupper() or next_char.isdigit()) and abbreviation not in ("fig", "no"))
            ):
                continue
            if len(before) == 1 and before.isalpha():
                continue  # initials, genus abbreviations
        if cased and next_char.islower():
            continue
        if next_char in ",;:)":
            continue
        piece = line[start:end].strip()
        if piece:
            out.append(piece)
        start = nxt
    rest = line[start:].strip()
    if rest:
        out.append(rest)
    return out


def word_tokens(text: str) -> list[str]:
    """Lower-cased letter/digit runs: the unit of the text keys (punctuation and spacing ignored)."""
    return _TOKEN.findall(text.lower())


def text_key(text: str) -> str:
    """Normalised form of a sentence for exact matching: case, punctuation and spacing do not matter.

    Tokenised distributions ("( PKC )") and raw text ("(PKC)") give the same key.
    """
    return " ".join(word_tokens(unicodedata.normalize("NFKC", text)))


def digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).digest()
