"""What of the test splits a pretraining corpus must not contain.

The test splits are those of every dataset in the registry (``blurbkit.tasks.registry``): the
BLURB datasets under the data folder (``DATA/<name>/``) and every user dataset registered in
``$BLURBKIT_HOME/datasets`` (its own ``source`` folder). Each test split is read through the
dataset's own reader (``blurbkit.data.readers.read_split``), so a dataset added by the user is
decontaminated like a built-in one. Datasets without a ``test`` file (AIMed's folds) or whose
test file is absent are skipped. Three kinds of evidence:

* **PMIDs** — the PMIDs that readers record as document ids (EBM PICO ``doc_id``, HoC and
  PubMedQA ``id``), and DDI-MedLine (test file names are PMIDs).
* **Sentence keys** — every test sentence/context sentence of the unmasked test sets (NER and
  PICO sentences, HoC sentences, BIOSSES pairs, PubMedQA and BioASQ contexts split into
  sentences, DDI sentences from the XML, unmasked relation sentences), as :func:`text_key`
  (lower case, letters/digits only), so tokenised and raw text match.
* **Word windows** — every run of ``window`` consecutive key words of those sentences and of the
  masked relation sets (ChemProt, GAD, whose text has @GENE$-style placeholders: the placeholders
  break the windows). A document sharing ``min_windows`` distinct windows with the test sets is
  dropped; this catches test sentences that the corpus splits or punctuates differently.
"""

from __future__ import annotations

import re
import tarfile
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from blurbkit.data.schema import Record
from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.text import split_sentences, text_key, word_tokens
from blurbkit.tasks.registry import DatasetSpec, all_datasets

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
        # NFKC as every corpus sentence is read (pretrain/text.py): a test sentence with µ, ™ or ₂
        # would otherwise never match its own text in the corpus.
        text = unicodedata.normalize("NFKC", text)
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


@dataclass
class TestEvidence:
    """What one dataset's test split contributes: PMIDs, and sentences (exact or windows only)."""

    __test__ = False
    pmids: set[str] = field(default_factory=set)
    sentences: list[str] = field(default_factory=list)
    exact: bool = True


# Readers whose records carry the abstract's PMID, and in which field.
PMID_FIELDS = {"pico": "doc_id", "hoc": "id", "pubmedqa": "id"}


def _record_sentences(spec: DatasetSpec, record: Record) -> Iterator[str]:
    """The test text of one canonical record, sentence by sentence (its task type says where the text is)."""
    for text, one_sentence in spec.task.passages(record):
        if one_sentence:
            yield text
        else:
            yield from split_sentences(text)


def _from_records(spec: DatasetSpec, source: Path) -> TestEvidence:
    from blurbkit.data.readers import read_split

    records = read_split(spec, source, "test").records
    evidence = TestEvidence()
    field_name = PMID_FIELDS.get(spec.reader)
    if field_name is not None:
        evidence.pmids = {str(r[field_name]).strip() for r in records if str(r.get(field_name) or "").strip().isdigit()}
    masked = spec.task.placeholder_text(records)
    if masked:  # placeholder text (@GENE$): word windows only, each distinct sentence once
        evidence.exact = False
        evidence.sentences = list(dict.fromkeys(s for r in records for s in _record_sentences(spec, r)))
    else:
        evidence.sentences = [s for r in records for s in _record_sentences(spec, r)]
    return evidence


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as err:
        raise BlurbkitError(f"not UTF-8 ({err.reason})", path=path) from None


def _ddi_evidence(spec: DatasetSpec, source: Path) -> TestEvidence:
    """DDI: every sentence of the test documents in the 2013 XML (also those without a drug pair,
    which the pair records miss), and the PMIDs of the MedLine test documents."""
    tar_path = source / spec.files.get("train", "raw_corpus/DDIextraction_2013.tar.gz")
    index = source / "blurb_split_index" / "test_files.tsv"
    if not (tar_path.is_file() and index.is_file()):
        return _from_records(spec, source)
    wanted = {line.strip() for line in _read_text(index).splitlines() if line.strip()}
    evidence = TestEvidence(pmids={Path(name).stem for name in wanted if "/MedLine/" in name})
    try:
        with tarfile.open(tar_path, "r:gz") as tar:
            for member in tar:
                name = member.name.split("/", 1)[-1]
                if member.isfile() and name in wanted:
                    root = ET.fromstring(tar.extractfile(member).read())
                    evidence.sentences.extend(s.get("text", "") for s in root.iter("sentence"))
    except (OSError, tarfile.TarError, ET.ParseError) as err:
        raise BlurbkitError(f"cannot read the DDI test documents ({err})", path=tar_path) from None
    return evidence


# Readers whose raw distribution holds more test evidence than their records (by reader name).
EVIDENCE: dict[str, Callable[[DatasetSpec, Path], TestEvidence]] = {"ddi": _ddi_evidence}


def datasets_with_test(data_dir: Path) -> Iterator[tuple[DatasetSpec, Path]]:
    """(dataset, its raw folder) for every registered dataset whose test file is present."""
    for spec in all_datasets().values():
        source = spec.source if spec.source is not None else data_dir / spec.name
        if "test" in spec.files and (source / spec.files["test"]).is_file():
            yield spec, source



def build_test_index(data_dir: str | Path, window: int = 10) -> TestIndex:
    """Collect the test PMIDs, sentence keys and word windows of every registered dataset's test split."""
    data = Path(data_dir)
    index = TestIndex(window=window)
    for spec, source in datasets_with_test(data):
        evidence = EVIDENCE.get(spec.reader, _from_records)(spec, source)
        entry = index.sources.setdefault(spec.name, {})
        if evidence.pmids:
            index.pmids.update(evidence.pmids)
            entry["pmids"] = len(evidence.pmids)
        for sentence in evidence.sentences:
            index.add_sentence(sentence, exact=evidence.exact)
        entry["sentences"] = len(evidence.sentences)
    if not index.sources:
        if not data.is_dir():
            raise BlurbkitError("data folder not found (pass --data DIR with the BLURB distributions)", path=data)
        raise BlurbkitError("no test split of a registered dataset found under the data folder", path=data)
    return index
