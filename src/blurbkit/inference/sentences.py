"""Sentence splitting of raw text for the models trained on the BLURB corpora, which are sentences.

The rule (offsets are always into the string given; Python indices, i.e. Unicode code points):

- a line break ends a sentence (no training sentence spans lines);
- ``.``, ``!``, ``?`` and ``…`` (with any closing quotes or brackets after them) end a sentence
  when followed by white space and then a character that is not a lower-case letter (upper case,
  digit, bracket, quote, CJK ...): "0.5 mg", "e.g. the", "p. 3" do not split; a sentence that
  starts in lower case ("mRNA levels rose.") is not split off;
- but not after a common abbreviation ("e.g.", "i.e.", "et al.", "Fig.", "vs.", "Dr.", "approx.",
  ... see ABBREVIATIONS) nor after a single capital letter (an initial: "J. Smith");
- the CJK full stops ``。！？`` end a sentence whatever follows;
- each sentence is trimmed of surrounding white space; blank stretches make no sentence.

The words inside a sentence are tasks/types/token.py's `split_words` (runs of letters/digits,
every other non-space character alone, combining marks kept on their letter), the tokenisation of
the BLURB NER corpora.
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset({
    "e.g", "i.e", "al", "fig", "figs", "vs", "dr", "mr", "mrs", "ms", "prof", "approx", "ca", "cf", "resp",
    "vol", "eq", "eqs", "ref", "refs", "st", "jr", "sr", "inc", "ltd", "corp", "sp", "spp", "var", "subsp",
    "eds", "mol", "wt", "ph.d", "univ", "dept",
})

# End-of-sentence punctuation (+ closers), the white space after it, and the next character.
_END = re.compile(r"[.!?\u2026]+[\"'\u2019\u201d)\]}]*(?=(\s+)(\S))")
_LINE_BREAK = re.compile(r"[\n\r\u2028\u2029\x0b\x0c\x85]+")
_CJK_END = re.compile(r"[\u3002\uff01\uff1f]")
_LAST_WORD = re.compile(r"([\w.]+)$")


def _is_break(text: str, match: re.Match[str]) -> bool:
    following = match.group(2)
    if following.islower():
        return False
    if "\n" in match.group(1):
        return True  # a line break splits anyway (handled below too)
    if match.group(0)[0] != ".":
        return True
    window = max(0, match.start() - 40)  # the word before the stop; a bounded look-back keeps this linear
    word = _LAST_WORD.search(text, window, match.start())
    if word is None:
        return True
    token = word.group(1).rstrip(".").lower()
    if token in ABBREVIATIONS:
        return False
    return not (len(token) == 1 and word.group(1)[0].isupper())  # an initial


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, trimmed; text[start:end] is the sentence."""
    cuts = {0, len(text)}
    for match in _LINE_BREAK.finditer(text):
        cuts.update(match.span())
    for match in _END.finditer(text):
        if _is_break(text, match):
            cuts.add(match.end())
    for match in _CJK_END.finditer(text):
        cuts.add(match.end())
    bounds = sorted(cuts)
    spans = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        piece = text[start:end]
        stripped = piece.strip()
        if not stripped:
            continue
        lead = len(piece) - len(piece.lstrip())
        spans.append((start + lead, start + lead + len(stripped)))
    return spans
