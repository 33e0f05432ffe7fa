"""What of the BLURB test splits a pretraining corpus must not contain.

Three kinds of evidence, read from the raw distributions in the shared data folder:

* **PMIDs** — HoC (blurb_index/test_pmid.tsv), PubMedQA (official/test_ground_truth.json),
  EBM PICO (``-DOCSTART- (PMID)`` lines of test.txt), DDI-MedLine (test file names are PMIDs).
* **Sentence keys** — every test sentence/context sentence of the unmasked test sets (the five NER
  sets, EBM PICO, HoC, BIOSSES, PubMedQA and BioASQ contexts, DDI sentences from the XML), as
  :func:`text_key` (lower case, letters/digits only), so tokenised and raw text match.
* **Word windows** — every run of ``window`` consecutive key words of those sentences and of the
  masked relation sets (ChemProt, GAD, whose text has @GENE$-style placeholders: the placeholders
  break the windows). A document sharing ``min_windows`` distinct windows with the test sets is
  dropped; this catches test sentences that the corpus splits or punctuates differently.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.text import split_sentences, text_key, word_tokens

_PLACEHOLDER = re.compile(r"@[A-Z]+\$")
MIN_KEY_WORDS = 5


@dataclass
class TestIndex:
    __test__ = False  # not a pytest class
    window: int = 10
    pmids: set[str] = field(default_factory=set)
    keys: set[int] = field(default_factory=set)
    windows: set[int] = field(default_factory=set)
    sources: dict[str, dict[str, int]] = field(default_factory=dict)

    def add_sentence(self, text: str, *, exact: bool = True) -> None:
        if exact and _PLACEHOLDER.search(text) is None:
            words = word_tokens(text)
            if len(words) >= MIN_KEY_WORDS:
                self.keys.add(hash(" ".join(words)))
        for segment in _PLACEHOLDER.split(text):
            words = word_tokens(segment)
            for i in range(len(words) - self.window + 1):
                self.windows.add(hash(tuple(words[i : i + self.window])))

    def sentence_hit(self, sentence: str) -> bool:
        key = text_key(sentence)
        return key.count(" ") + 1 >= MIN_KEY_WORDS and hash(key) in self.keys

    def window_hits(self, words: list[str], stop_at: int) -> int:
        hits: set[int] = set()
        n = self.window
        for i in range(len(words) - n + 1):
            h = hash(tuple(words[i : i + n]))
            if h in self.windows:
                hits.add(h)
                if len(hits) >= stop_at:
                    break
        return len(hits)


def default_data_dir() -> Path:
    import os

    for var in ("BLURBKIT_SHARED_DATA", "BLURBKIT_DATA"):
        if os.environ.get(var):
            return Path(os.environ[var])
    for candidate in (Path.cwd() / ".." / "shared" / "data", Path.cwd() / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return Path("../shared/data")


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as err:
        raise BlurbkitError(f"not UTF-8 ({err.reason})", path=path) from None


def _conll_sentences(path: Path) -> Iterator[str]:
    tokens: list[str] = []
    for line in _read_text(path).splitlines():
        if not line.strip() or line.startswith("-DOCSTART-"):
            if tokens:
                yield " ".join(tokens)
            tokens = []
            continue
        tokens.append(re.split(r"[\t ]", line, maxsplit=1)[0])
    if tokens:
        yield " ".join(tokens)


def _tsv_column(path: Path, column: int, header: bool) -> Iterator[str]:
    reader = csv.reader(io.StringIO(_read_text(path)), delimiter="\t", quoting=csv.QUOTE_NONE)
    for number, row in enumerate(reader):
        if header and number == 0:
            continue
        if len(row) > column:
            yield row[column]


def _ddi_test(path: Path, index: Path) -> tuple[set[str], list[str]]:
    wanted = {line.strip() for line in _read_text(index).splitlines() if line.strip()}
    pmids = {Path(name).stem for name in wanted if "/MedLine/" in name}
    sentences: list[str] = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = member.name.split("/", 1)[-1]
            if member.isfile() and name in wanted:
                root = ET.fromstring(tar.extractfile(member).read())
                sentences.extend(s.get("text", "") for s in root.iter("sentence"))
    return pmids, sentences


def build_test_index(data_dir: str | Path, window: int = 10) -> TestIndex:
    """Collect the test PMIDs, sentence keys and word windows of every BLURB test split found."""
    data = Path(data_dir)
    if not data.is_dir():
        raise BlurbkitError("data folder not found (pass --data DIR with the BLURB distributions)", path=data)
    index = TestIndex(window=window)

    def add(name: str, sentences: Iterable[str], exact: bool = True) -> None:
        count = 0
        for sentence in sentences:
            index.add_sentence(sentence, exact=exact)
            count += 1
        index.sources.setdefault(name, {})["sentences"] = count

    def add_pmids(name: str, pmids: Iterable[str]) -> None:
        found = {p.strip() for p in pmids if p.strip()}
        index.pmids.update(found)
        index.sources.setdefault(name, {})["pmids"] = len(found)

    for name in ("bc5chem", "bc5disease", "ncbi_disease", "bc2gm", "jnlpba"):
        if (data / name / "test.tsv").is_file():
            add(name, _conll_sentences(data / name / "test.tsv"))
    pico = data / "ebm_pico" / "test.txt"
    if pico.is_file():
        text = _read_text(pico)
        add_pmids("ebm_pico", re.findall(r"-DOCSTART- \((\d+)\)", text))
        add("ebm_pico", (s for s in _conll_sentences(pico)))
    hoc = data / "hoc" / "blurb_index" / "test_pmid.tsv"
    if hoc.is_file():
        add_pmids("hoc", (p.replace(".txt", "") for p in re.split(r"[,\s]+", _read_text(hoc))))
    if (data / "hoc" / "blurb_tsv" / "test.tsv").is_file():
        add("hoc", _tsv_column(data / "hoc" / "blurb_tsv" / "test.tsv", 1, header=True))
    truth = data / "pubmedqa" / "official" / "test_ground_truth.json"
    if truth.is_file():
        add_pmids("pubmedqa", json.loads(_read_text(truth)).keys())
    pqa = data / "pubmedqa" / "linkbert_json" / "test.json"
    if pqa.is_file():
        add("pubmedqa", (s for line in _read_text(pqa).splitlines() if line.strip()
                         for s in split_sentences(json.loads(line).get("sentence2", ""))))
    bioasq = data / "bioasq" / "blurb_tsv" / "test.tsv"
    if bioasq.is_file():
        add("bioasq", (s for ctx in _tsv_column(bioasq, 2, header=False) for s in split_sentences(ctx)))
    biosses = data / "biosses" / "blurb_tsv" / "test.tsv"
    if biosses.is_file():
        add("biosses", (s for col in (1, 2) for s in _tsv_column(biosses, col, header=True)))
    ddi_tar = data / "ddi" / "raw_corpus" / "DDIextraction_2013.tar.gz"
    ddi_index = data / "ddi" / "blurb_split_index" / "test_files.tsv"
    if ddi_tar.is_file() and ddi_index.is_file():
        pmids, sentences = _ddi_test(ddi_tar, ddi_index)
        add_pmids("ddi", pmids)
        add("ddi", sentences)
    if (data / "chemprot" / "test_blurb.tsv").is_file():
        add("chemprot", set(_tsv_column(data / "chemprot" / "test_blurb.tsv", 0, header=False)), exact=False)
    if (data / "gad" / "test.tsv").is_file():
        add("gad", set(_tsv_column(data / "gad" / "test.tsv", 1, header=True)), exact=False)
    if not index.sources:
        raise BlurbkitError("no BLURB test split found under the data folder", path=data)
    return index
