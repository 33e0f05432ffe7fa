"""Hostile input, fuzzed (hypothesis): small valid files modelled on the real distributions are
generated here, then truncated, re-encoded (latin-1, invalid UTF-8), given a BOM or CRLF line ends,
a huge line, NaN/inf values, duplicate or missing ids, or random bytes. Every case must end either
in a correct result or in exactly one ``blurbkit: error: FILE[:LINE]: ...`` line, exit code 2, no
traceback and no partial output, through the CLI (prepare, evaluate, predict, datasets add and the
user dataset TOML files).

A BOM or CRLF line ends must give exactly the records (or score) of the clean file.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import json
import math
import shutil
import tarfile
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blurbkit.cli import main as cli_main
from blurbkit.cli.main import main
from blurbkit.tasks.registry import user_registry_dir

EXAMPLES = 40  # per property: the whole file runs in well under a minute on one core
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
BOM = b"\xef\xbb\xbf"
# Examples write small files many times and blurbkit fsyncs what it writes: on tmpfs that is free.
SHM = Path("/dev/shm")


def scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="blurbkit-fuzz-", dir=SHM if SHM.is_dir() else None)


HUGE = "x" * 300_000


# ---- running the CLI -----------------------------------------------------------------------------
_parser = functools.cache(cli_main.build_parser)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `blurbkit ARGV`; any exception other than the CLI's own
    handling escapes, so a traceback fails the test. The argument parser is built once (building
    it is half the time of a small `prepare`)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        mock.patch.object(cli_main, "build_parser", _parser),
    ):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def assert_one_line_error(rc: int, err: str, *paths: Path, line: int | None = None) -> str:
    lines = [
        entry
        for entry in err.splitlines()
        if not entry.startswith(("blurbkit: preparing", "blurbkit: prepared"))
    ]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    message = lines[0]
    assert message.startswith("blurbkit: error: "), message
    if paths:
        assert any(str(path) in message for path in paths), (message, paths)
    if line is not None:
        assert f":{line}: " in message, (message, line)
    return message


# ---- mutations -------------------------------------------------------------------------------------
SAME = ("bom", "crlf", "bom_crlf")  # must read exactly like the clean file
KINDS = (
    "none", "bom", "crlf", "bom_crlf", "truncate", "invalid_utf8", "latin1", "huge_line", "empty",
    "drop_line", "dup_line", "field", "random_byte", "lone_cr",
)  # fmt: skip
FIELD_VALUES = [
    "",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e999",
    "-1",
    "null",
    "é",
    "@GENE$",
    "-DOCSTART-",
    "x" * 5000,
    " ",
]
JSON_VALUES = [None, math.nan, math.inf, -math.inf, [], {}, 42, -1, "", True, "x" * 5000, [0, 1], "PMID_s99"]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


@st.composite
def mutated(draw, data: bytes, sep: str | None) -> tuple[str, bytes, int | None]:
    """(kind, mutated bytes, the line an invalid byte sits on) of a clean file; `sep`: the field
    separator of the format ("\\t", " ") or None for JSON lines."""
    kind = draw(st.sampled_from(KINDS))
    lines = _lines(data)
    pick = draw(st.integers(0, max(0, len(lines) - 1)))
    bad_line = None
    if kind == "bom":
        data = BOM + data
    elif kind == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif kind == "bom_crlf":
        data = BOM + data.replace(b"\n", b"\r\n")
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "invalid_utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + bytes([draw(st.integers(0x80, 0xFF))]) + data[at:]
        bad_line = data[:at].count(b"\n") + 1
    elif kind == "latin1":
        lines[pick] = lines[pick] + "Müller".encode("latin-1")
        data = b"\n".join(lines)
        bad_line = pick + 1
    elif kind == "huge_line":
        lines.insert(pick, HUGE.encode())
        data = b"\n".join(lines)
    elif kind == "empty":
        data = draw(st.sampled_from([b"", b"\n\n", BOM, b"  \r\n"]))
    elif kind == "drop_line":
        del lines[pick]
        data = b"\n".join(lines)
    elif kind == "dup_line":
        lines.insert(pick, lines[pick])
        data = b"\n".join(lines)
    elif kind == "field":
        text = lines[pick].decode("utf-8", "surrogateescape")  # a binary file (the corpus tarball) too
        if sep is None:
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and obj:
                key = draw(st.sampled_from(sorted(obj)))
                if draw(st.booleans()):
                    del obj[key]
                else:
                    obj[key] = draw(st.sampled_from(JSON_VALUES))
                text = json.dumps(obj)
        else:
            fields = text.split(sep)
            fields[draw(st.integers(0, len(fields) - 1))] = draw(st.sampled_from(FIELD_VALUES))
            text = sep.join(fields)
        lines[pick] = text.encode("utf-8", "surrogateescape")
        data = b"\n".join(lines)
    elif kind == "random_byte" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    elif kind == "lone_cr":
        data = data.replace(b"\n", b"\r", 1)
    return kind, data, bad_line


# ---- small valid files, modelled on the real distributions ---------------------------------------
WORDS = ["Selegiline", "induced", "postural", "hypotension", "in", "Parkinson", "'", "s", "disease", "α-synuclein",
         "Müller", "naloxone", "(", ")", ".", "-", "of", "patients", "kinase", "IL-2"]  # fmt: skip
word = st.sampled_from(WORDS)
pmid = st.integers(10_000_000, 39_999_999).map(str)


def words(n_min: int = 1, n_max: int = 8) -> st.SearchStrategy[str]:
    return st.lists(word, min_size=n_min, max_size=n_max).map(" ".join)


@st.composite
def conll_file(draw) -> bytes:
    """BLURB NER: token<TAB>IOB2 tag, blank line between sentences, optional -DOCSTART- lines."""
    out = []
    for _ in range(draw(st.integers(1, 2))):
        if draw(st.booleans()):
            out += [draw(st.sampled_from(["-DOCSTART-\tO", "-DOCSTART- (123)"])), ""]
        for _ in range(draw(st.integers(1, 3))):
            previous = "O"
            for _ in range(draw(st.integers(1, 6))):
                kind = draw(st.sampled_from(["Chemical", "Disease"]))
                choices = ["O", f"B-{kind}"] + ([f"I-{previous[2:]}"] if previous != "O" else [])
                previous = draw(st.sampled_from(choices))
                out.append(f"{draw(word)}\t{previous}")
            out.append("")
    return "\n".join(out).encode()


@st.composite
def pico_file(draw) -> bytes:
    """EBM PICO (SciBERT form): 'token NN O TAG' with IO tags, -DOCSTART- (PMID) before each abstract."""
    out = []
    for doc in draw(st.lists(pmid, min_size=1, max_size=3, unique=True)):
        out += [f"-DOCSTART- ({doc})", ""]
        for _ in range(draw(st.integers(1, 2))):
            for _ in range(draw(st.integers(1, 6))):
                out.append(f"{draw(word)} NN O {draw(st.sampled_from(['O', 'I-PAR', 'I-INT', 'I-OUT']))}")
            out.append("")
    return "\n".join(out).encode()


def relation_text(first: str, second: str) -> st.SearchStrategy[str]:
    return st.tuples(words(0, 4), words(0, 4), words(0, 4)).map(
        lambda t: f"{t[0]} @{first}$ {t[1]} @{second}$ {t[2]}".strip()
    )


@st.composite
def chemprot_file(draw) -> bytes:
    rows = draw(
        st.lists(st.tuples(relation_text("CHEMICAL", "GENE"), st.integers(0, 2)), min_size=1, max_size=5)
    )
    return "".join(f"{text}\t{label}\n" for text, label in rows).encode()


@st.composite
def gad_file(draw) -> bytes:
    rows = draw(
        st.lists(st.tuples(relation_text("GENE", "DISEASE"), st.sampled_from("01")), min_size=1, max_size=5)
    )
    return (
        "index\tsentence\tlabel\n" + "".join(f"{i}\t{t}\t{lab}\n" for i, (t, lab) in enumerate(rows))
    ).encode()


@st.composite
def biosses_file(draw) -> bytes:
    rows = draw(
        st.lists(
            st.tuples(words(), words(), st.floats(0, 4).map(lambda x: round(x, 2))), min_size=1, max_size=5
        )
    )
    body = "".join(f"{i + 1}\t{a}\t{b}\t{s}\n" for i, (a, b, s) in enumerate(rows))
    return ("pair_id\tsent1\tsent2\tscore\n" + body).encode()


@st.composite
def hoc_files(draw) -> tuple[bytes, bytes]:
    """LinkBERT's abstract-level JSON lines and BLURB's sentence TSV (labels 0_x,1_x,2_x, PMID_sN)."""
    docs, sentence_rows = [], ["labels\tsentence\tindex"]
    for doc in draw(st.lists(pmid, min_size=1, max_size=3, unique=True)):
        union = [0, 0, 0]
        texts = []
        for k in range(draw(st.integers(1, 3))):
            vector = draw(st.lists(st.integers(0, 1), min_size=3, max_size=3))
            union = [max(a, b) for a, b in zip(union, vector, strict=True)]
            text = draw(words())
            texts.append(text)
            sentence_rows.append(f"{','.join(f'{i}_{v}' for i, v in enumerate(vector))}\t{text}\t{doc}_s{k}")
        docs.append(json.dumps({"id": doc, "sentence": " ".join(texts), "label": union}, ensure_ascii=False))
    return ("\n".join(docs) + "\n").encode(), ("\n".join(sentence_rows) + "\n").encode()


@st.composite
def pubmedqa_file(draw) -> bytes:
    ids = draw(st.lists(pmid, min_size=1, max_size=4, unique=True))
    rows = [
        {
            "id": i,
            "sentence1": draw(words()) + "?",
            "sentence2": draw(words()),
            "label": draw(st.sampled_from(["yes", "no", "maybe"])),
        }
        for i in ids
    ]
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


@st.composite
def bioasq_file(draw) -> bytes:
    ids = draw(
        st.lists(st.text("0123456789abcdef", min_size=24, max_size=24), min_size=1, max_size=4, unique=True)
    )
    return "".join(
        f"{i}\t{draw(words())}?\t{draw(words())}\t{draw(st.sampled_from(['yes', 'no']))}\n" for i in ids
    ).encode()


@st.composite
def aimed_file(draw, fold: int) -> bytes:
    rows = []
    for n in range(draw(st.integers(1, 3))):
        a, b, c = draw(words(1, 3)), draw(words(1, 3)), draw(words(0, 3))
        text = f"{a} {b} {c}"
        e1, e2 = [[0, len(a)]], [[len(a) + 1, len(a) + 1 + len(b)]]
        rel = {
            "relation_type": draw(st.sampled_from(["positive", "negative"])),
            "entity_1_idx": e1,
            "entity_2_idx": e2,
            "entity_1_type": "protein",
            "entity_2_type": "protein",
        }
        rows.append({"id": f"AIMed.d{fold}.s{n}.p0", "text": text, "relation": [rel]})
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


DDI_XML = """<?xml version="1.0" encoding="UTF-8"?>
<document id="DDI-MedLine.d1">
  <sentence id="DDI-MedLine.d1.s0" text="Aspirin increases the effect of warfarin in patients.">
    <entity id="DDI-MedLine.d1.s0.e0" charOffset="0-6" type="drug" text="Aspirin"/>
    <entity id="DDI-MedLine.d1.s0.e1" charOffset="32-39" type="drug" text="warfarin"/>
    <pair id="DDI-MedLine.d1.s0.p0" e1="DDI-MedLine.d1.s0.e0" e2="DDI-MedLine.d1.s0.e1" ddi="true" type="effect"/>
  </sentence>
</document>
"""
DDI_TSV = "DDI-MedLine.d1.s0.p0\t@DRUG$ increases the effect of @DRUG$ in patients.\tDDI-effect\n"


def ddi_tarball(xml: bytes) -> bytes:
    """The same bytes on every call: gzip's header holds a time stamp, and a tarball that changed with
    the clock made hypothesis see different data for the same draws (FlakyStrategyDefinition)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as archive:
        info = tarfile.TarInfo("DDI/train_dataset/MedLine/d1.xml")
        info.size = len(xml)
        archive.addfile(info, io.BytesIO(xml))
    return buffer.getvalue()


# Each format: (TOML lines beyond reader/source/files, the split file names, field separator)
FORMATS = {
    "conll": ('task_type = "ner"\nentity_types = ["Chemical", "Disease"]', "{s}.tsv", "\t"),
    "pico": ('task_type = "pico"\nentity_types = ["PAR", "INT", "OUT"]', "{s}.txt", " "),
    "chemprot": ('task_type = "relation"\nlabels = ["false", "CPR:3", "CPR:4"]\nnegative_label = "false"\n'
                 'entity_types = ["CHEMICAL", "GENE"]', "{s}.tsv", "\t"),
    "gad": ('task_type = "relation"\nlabels = ["0", "1"]\nnegative_label = "0"\nentity_types = ["GENE", "DISEASE"]', "{s}.tsv", "\t"),
    "biosses": ('task_type = "similarity"', "{s}.tsv", "\t"),
    "hoc": ('task_type = "doc_classification"\nlabels = ["a", "b", "c"]', "{s}.json", None),
    "pubmedqa": ('task_type = "qa"\nlabels = ["yes", "no", "maybe"]', "{s}.json", None),
    "bioasq": ('task_type = "qa"\nlabels = ["yes", "no"]', "{s}.tsv", "\t"),
    "aimed": ('task_type = "relation"\nlabels = ["negative", "positive"]\nnegative_label = "negative"\n'
              'entity_types = ["PROTEIN"]', None, None),
    "ddi": ('task_type = "relation"\nlabels = ["DDI-false", "DDI-effect"]\nnegative_label = "DDI-false"\n'
            'entity_types = ["DRUG"]', None, "\t"),
}  # fmt: skip
SINGLE = {"conll": conll_file, "pico": pico_file, "chemprot": chemprot_file, "gad": gad_file,
          "biosses": biosses_file, "pubmedqa": pubmedqa_file, "bioasq": bioasq_file}  # fmt: skip


@st.composite
def dataset_files(draw, fmt: str) -> tuple[dict[str, bytes], str]:
    """(relative path -> bytes of a valid dataset, the path the fuzzer mutates)."""
    if fmt in SINGLE:
        pattern = FORMATS[fmt][1]
        files = {pattern.format(s=s): draw(SINGLE[fmt]()) for s in ("train", "dev", "test")}
        if fmt == "chemprot":
            files["label2id.tsv"] = b"0\t0\nCPR:3\t1\nCPR:4\t2\n"
            return files, draw(st.sampled_from(["dev.tsv", "label2id.tsv"]))
        return files, "dev" + pattern[3:]
    if fmt == "hoc":
        files = {}
        for s in ("train", "dev", "test"):
            files[f"{s}.json"], files[f"blurb_tsv/{s}.tsv"] = draw(hoc_files())
        return files, draw(st.sampled_from(["dev.json", "blurb_tsv/dev.tsv"]))
    if fmt == "aimed":
        files = {f"test_{k}.json": draw(aimed_file(k)) for k in range(3)}
        return files, "test_1.json"
    # ddi: the XML corpus (train) plus BLURB's dev/test TSV and split indexes
    files = {
        "raw.tar.gz": ddi_tarball(DDI_XML.encode()),
        "dev.tsv": DDI_TSV.encode(),
        "test.tsv": DDI_TSV.encode(),
    }
    for s in ("train", "dev", "test"):
        files[f"blurb_split_index/{s}_files.tsv"] = b"train_dataset/MedLine/d1.xml\n"
    return files, draw(
        st.sampled_from(["dev.tsv", "blurb_split_index/dev_files.tsv", "raw.tar.gz", "d1.xml"])
    )


def write_dataset(root: Path, name: str, fmt: str, files: dict[str, bytes]) -> Path:
    source = root / name
    for relative, data in files.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(data)
    if fmt == "aimed":
        table = 'files = { folds = "test_{k}.json" }'
    elif fmt == "ddi":
        table = 'files = { train = "raw.tar.gz", dev = "dev.tsv", test = "test.tsv" }'
    else:
        pattern = FORMATS[fmt][1]
        table = (
            "files = { "
            + ", ".join(f'{s} = "{pattern.format(s=s)}"' for s in ("train", "dev", "test"))
            + " }"
        )
    user_registry_dir().mkdir(parents=True, exist_ok=True)
    (user_registry_dir() / f"{name}.toml").write_text(
        f'reader = "{fmt}"\nsource = "{source}"\n{table}\nin_blurb = false\n{FORMATS[fmt][0]}\n'
    )
    return source


def prepared_records(out: Path, name: str) -> dict[str, list[dict]]:
    return {
        s: [json.loads(x) for x in (out / name / f"{s}.jsonl").read_text("utf-8").splitlines()]
        for s in ("train", "dev", "test")
    }


def prepare(root: Path, name: str) -> tuple[int, str, Path]:
    out = root / "out" / "prepared"
    rc, _, err = run_cli(["prepare", "--out", str(out), "--datasets", name])
    return rc, err, out


def check_records(records: dict[str, list[dict]]) -> None:
    """What any successfully prepared split must satisfy, however odd its input was."""
    for split, items in records.items():
        assert items, split
        ids = [r["id"] for r in items]
        assert len(ids) == len(set(ids)), split
        text = json.dumps(items, ensure_ascii=False)
        assert "\ufeff" not in text and "\\r" not in text, split  # no BOM or CR leaks into records
        for record in items:
            if "score" in record:
                assert math.isfinite(record["score"])


# ---- 1. readers through `blurbkit prepare` ---------------------------------------------------------
@pytest.mark.parametrize("fmt", list(FORMATS))
@FUZZ
@given(data=st.data())
def test_reader_fuzz(fmt, data):
    files, target = data.draw(dataset_files(fmt))
    clean_files = dict(files)
    if fmt == "ddi" and target == "d1.xml":  # mutate the XML inside the corpus tarball
        kind, xml, bad_line = data.draw(mutated(DDI_XML.encode(), None))
        files["raw.tar.gz"] = ddi_tarball(xml)
        mutated_path = "raw.tar.gz"
    else:
        sep = FORMATS[fmt][2] if not target.endswith("label2id.tsv") else "\t"
        kind, files[target], bad_line = data.draw(mutated(files[target], sep))
        mutated_path = target
    name = f"fz_{fmt}"
    with scratch() as tmp:
        root = Path(tmp)
        clean = None
        if kind in SAME + ("none",):  # the clean file reads, and a BOM / CRLF copy reads the same
            write_dataset(root / "clean", name, fmt, clean_files)
            rc, err, out = prepare(root / "clean", name)
            assert rc == 0, err
            clean = prepared_records(out, name)
            check_records(clean)
        source = write_dataset(root / "fuzz", name, fmt, files)
        rc, err, out = prepare(root / "fuzz", name)
        path = source / mutated_path
        if rc == 0:
            records = prepared_records(out, name)
            check_records(records)
            if kind in SAME and mutated_path != "raw.tar.gz":
                assert records == clean, kind
            assert kind not in ("invalid_utf8", "latin1", "empty") or mutated_path == "raw.tar.gz", (
                kind,
                records,
            )
        else:
            message = assert_one_line_error(rc, err, source)
            assert not (root / "fuzz" / "out").exists() or not any((root / "fuzz" / "out").iterdir())
            assert kind not in SAME + ("none",) or mutated_path == "raw.tar.gz", message
            if bad_line is not None and mutated_path != "raw.tar.gz":
                assert message.startswith(f"blurbkit: error: {path}:{bad_line}: "), message


def test_ddi_corpus_without_a_drug_pair_is_one_line_not_an_empty_split(tmp_path):
    """Found by the fuzzer: a sentence that lost one of its two drugs gave a train split of 0 records."""
    one_drug = "\n".join(line for line in DDI_XML.splitlines() if 's0.e1"' not in line and "<pair" not in line) + "\n"
    files = {"raw.tar.gz": ddi_tarball(one_drug.encode()), "dev.tsv": DDI_TSV.encode(), "test.tsv": DDI_TSV.encode()}
    for s in ("train", "dev", "test"):
        files[f"blurb_split_index/{s}_files.tsv"] = b"train_dataset/MedLine/d1.xml\n"
    with scratch() as tmp:
        root = Path(tmp)
        source = write_dataset(root, "fz_ddi_one_drug", "ddi", files)
        rc, err, out = prepare(root, "fz_ddi_one_drug")
        message = assert_one_line_error(rc, err, source)
        assert f"{source / 'raw.tar.gz'}: dataset 'fz_ddi_one_drug' train: the source files yield no records" in message
        assert not out.exists() or not any(out.iterdir())


def test_bom_before_docstart_is_not_a_sentence(tmp_path):
    """The known gap: a BOM made '\\ufeffSelegiline' a token, and before -DOCSTART- a fake sentence."""
    name = "bom_conll"
    files = {
        f"{s}.tsv": BOM + b"-DOCSTART-\tO\n\nSelegiline\tB-Chemical\ninduced\tO\n"
        for s in ("train", "dev", "test")
    }
    write_dataset(tmp_path, name, "conll", files)
    rc, err, out = prepare(tmp_path, name)
    assert rc == 0, err
    dev = prepared_records(out, name)["dev"]
    assert [r["tokens"] for r in dev] == [["Selegiline", "induced"]]
    assert dev[0]["doc_id"] is not None


# ---- 2. evaluate: both kinds of prediction file ---------------------------------------------------
EVAL_FORMATS = ("conll", "gad", "hoc", "biosses", "pubmedqa")


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory):
    """One small prepared copy of a dataset per prediction-file kind (token lines; JSON lines by id)."""
    root = tmp_path_factory.mktemp("eval")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BLURBKIT_HOME", str(root / "home"))
        names = []
        for fmt in EVAL_FORMATS:
            files = {}
            for split in ("train", "dev", "test"):
                files.update(_fixed_files(fmt, split))
            write_dataset(root / "src", f"ev_{fmt}", fmt, files)
            names.append(f"ev_{fmt}")
        rc, _, err = run_cli(["prepare", "--out", str(root / "prepared"), "--datasets", ",".join(names)])
        assert rc == 0, err
        tomls = {p.name: p.read_text("utf-8") for p in (root / "home" / "datasets").glob("*.toml")}
    return root / "prepared", tomls


def _fixed_files(fmt: str, split: str) -> dict[str, bytes]:
    if fmt == "conll":
        body = "Selegiline\tB-Chemical\ninduced\tO\nhypotension\tB-Disease\n\nMüller\tO\nα-synuclein\tB-Chemical\nkinase\tI-Chemical\n\n"
        return {f"{split}.tsv": body.encode()}
    if fmt == "gad":
        rows = ["index\tsentence\tlabel"] + [f"{i}\t@GENE$ and @DISEASE$ case {i}\t{i % 2}" for i in range(5)]
        return {f"{split}.tsv": ("\n".join(rows) + "\n").encode()}
    if fmt == "biosses":
        rows = ["pair_id\tsent1\tsent2\tscore"] + [f"{i}\ta {i}\tb {i}\t{i * 0.7:.1f}" for i in range(1, 6)]
        return {f"{split}.tsv": ("\n".join(rows) + "\n").encode()}
    if fmt == "pubmedqa":
        rows = [
            {"id": str(100 + i), "sentence1": "q?", "sentence2": "c", "label": ["yes", "no", "maybe"][i % 3]}
            for i in range(5)
        ]
        return {f"{split}.json": "".join(json.dumps(r) + "\n" for r in rows).encode()}
    abstracts, sentences = [], ["labels\tsentence\tindex"]
    for doc, vectors in (
        ("111", [[1, 0, 0], [0, 0, 1]]),
        ("222", [[0, 1, 0]]),
        ("333", [[0, 0, 0], [1, 1, 0], [0, 0, 0]]),
    ):
        union = [max(column) for column in zip(*vectors, strict=True)]
        abstracts.append(json.dumps({"id": doc, "sentence": "text", "label": union}))
        for k, vector in enumerate(vectors):
            sentences.append(
                f"{','.join(f'{i}_{v}' for i, v in enumerate(vector))}\tsentence {k}\t{doc}_s{k}"
            )
    return {
        f"{split}.json": ("\n".join(abstracts) + "\n").encode(),
        f"blurb_tsv/{split}.tsv": ("\n".join(sentences) + "\n").encode(),
    }


def gold_prediction_file(prepared: Path, fmt: str) -> bytes:
    """A prediction file equal to the gold dev split (score 1), in the dataset's prediction format."""
    gold = [json.loads(x) for x in (prepared / f"ev_{fmt}" / "dev.jsonl").read_text("utf-8").splitlines()]
    if fmt == "conll":
        return "".join(
            "".join(f"{t}\t{g}\n" for t, g in zip(r["tokens"], r["tags"], strict=True)) + "\n" for r in gold
        ).encode()
    if fmt == "hoc":  # BLURB's sentence-level form
        rows = [{"id": s["id"], "prediction": s["labels"]} for r in gold for s in r["sentences"]]
    elif fmt == "biosses":
        rows = [{"id": r["id"], "prediction": r["score"]} for r in gold]
    else:
        rows = [{"id": r["id"], "prediction": r["label"]} for r in gold]
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


@pytest.mark.parametrize("fmt", EVAL_FORMATS)
@FUZZ
@given(data=st.data())
def test_evaluate_fuzz(fmt, eval_data, data):
    prepared, tomls = eval_data
    user_registry_dir().mkdir(parents=True, exist_ok=True)
    for name, text in tomls.items():
        (user_registry_dir() / name).write_text(text)
    clean = gold_prediction_file(prepared, fmt)
    kind, content, bad_line = data.draw(mutated(clean, None if fmt != "conll" else "\t"))
    with scratch() as tmp:
        path = Path(tmp) / ("pred.tsv" if fmt == "conll" else "pred.jsonl")
        path.write_bytes(content)
        rc, out, err = run_cli(
            [
                "evaluate",
                "--dataset",
                f"ev_{fmt}",
                "--split",
                "dev",
                "--predictions",
                str(path),
                "--data",
                str(prepared),
            ]
        )
    if rc == 0:
        result = json.loads(out)
        assert math.isfinite(result["score"]) or fmt == "biosses"
        if kind in SAME + ("none",):
            assert result["score"] == pytest.approx(1.0), kind
        assert kind not in ("invalid_utf8", "empty", "latin1"), (kind, result)
        nonblank = [x for x in content.split(b"\n") if x.strip()]
        assert fmt == "conll" or len(nonblank) == len(set(nonblank)), "a duplicated id was accepted"
    else:
        message = assert_one_line_error(rc, err, path)
        assert kind not in SAME + ("none",), message
        if bad_line is not None:
            assert f"{path}:{bad_line}: " in message, message


def test_hoc_invented_sentence_id_is_refused(eval_data, tmp_path):
    prepared, tomls = eval_data
    user_registry_dir().mkdir(parents=True, exist_ok=True)
    for name, text in tomls.items():
        (user_registry_dir() / name).write_text(text)
    lines = gold_prediction_file(prepared, "hoc").decode().splitlines()
    path = tmp_path / "pred.jsonl"
    # an invented sentence of a real abstract: refused, naming the id and its line
    path.write_text("\n".join(lines + ['{"id": "111_s99", "prediction": ["a"]}']) + "\n")
    rc, _, err = run_cli(
        [
            "evaluate",
            "--dataset",
            "ev_hoc",
            "--split",
            "dev",
            "--predictions",
            str(path),
            "--data",
            str(prepared),
        ]
    )
    message = assert_one_line_error(rc, err, path, line=len(lines) + 1)
    assert "'111_s99'" in message
    # a missing sentence contributes no labels (BLURB's union over predicted sentences): scored, not refused
    kept = [x for x in lines if '"333_s1"' not in x]
    path.write_text("\n".join(kept) + "\n")
    rc, out, err = run_cli(
        [
            "evaluate",
            "--dataset",
            "ev_hoc",
            "--split",
            "dev",
            "--predictions",
            str(path),
            "--data",
            str(prepared),
        ]
    )
    assert rc == 0, err
    result = json.loads(out)
    assert result["n_pred"] == result["n_gold"] - 2 and result["precision"] == 1.0
    # every sentence of an abstract missing = the abstract is missing: refused
    kept = [x for x in lines if '"222_s' not in x]
    path.write_text("\n".join(kept) + "\n")
    rc, _, err = run_cli(
        [
            "evaluate",
            "--dataset",
            "ev_hoc",
            "--split",
            "dev",
            "--predictions",
            str(path),
            "--data",
            str(prepared),
        ]
    )
    assert "no prediction for 1 of 3 gold ids (first: 222)" in assert_one_line_error(rc, err, path)


# ---- 3. predict: input files ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictors(tmp_path_factory):
    """Two tiny fine-tuned-model directories (NER: text in, spans out; QA: question/context fields)."""
    from blurbkit.inference.predictor import Predictor
    from blurbkit.models.loading import load_encoder, load_tokenizer
    from blurbkit.models.model import BlurbModel, ModelRecipe
    from blurbkit.models.tiny import build_tiny_bert
    from blurbkit.tasks.types import get_task_type

    root = tmp_path_factory.mktemp("models")
    encoder = build_tiny_bert(root / "encoder", hidden=16, layers=1, heads=2)
    loaded = {}
    for task_type, labels in (("ner", ["O", "B-Chemical", "I-Chemical"]), ("qa", ["yes", "no", "maybe"])):
        task = get_task_type(task_type)
        recipe = ModelRecipe(
            dataset="x",
            task_type=task_type,
            labels=labels,
            transform=task.transform,
            featurizer=task.featurizer,
            head=task.head,
            max_length=32,
            scheme="bio" if task_type == "ner" else None,
        )
        BlurbModel(load_encoder(encoder), recipe).save(root / task_type, load_tokenizer(encoder))
        loaded[str(root / task_type)] = Predictor.load(root / task_type)
    return root, loaded


@st.composite
def predict_input(draw, task_type: str) -> tuple[str, bytes]:
    if draw(st.booleans()):  # a text file, one input a line
        return "txt", "".join(draw(words()) + "\n" for _ in range(draw(st.integers(1, 4)))).encode()
    if task_type == "ner":
        rows = [{"text": draw(words())} for _ in range(draw(st.integers(1, 4)))]
    else:
        rows = [
            {"question": draw(words()) + "?", "context": draw(words())}
            for _ in range(draw(st.integers(1, 4)))
        ]
    if draw(st.booleans()):
        for row in rows:
            row["id"] = "same"  # inputs' own ids are not used to tell inputs apart
    return "jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


@pytest.mark.parametrize("task_type", ["ner", "qa"])
@FUZZ
@given(data=st.data())
def test_predict_input_fuzz(task_type, predictors, data, monkeypatch):
    from blurbkit.inference.predictor import Predictor

    root, loaded = predictors
    monkeypatch.setattr(Predictor, "load", classmethod(lambda cls, path, **kw: loaded[str(path)]))
    suffix, clean = data.draw(predict_input(task_type))
    kind, content, bad_line = data.draw(mutated(clean, None if suffix == "jsonl" else "\t"))
    if kind == "huge_line" and task_type == "ner":
        content = content.replace(
            HUGE.encode(), b"x " * 2000
        )  # many words, windowed (a 300k-char word is slow)
    with scratch() as tmp:
        path, out_file = Path(tmp) / f"in.{suffix}", Path(tmp) / "out.jsonl"
        path.write_bytes(content)
        rc, _, err = run_cli(
            ["predict", "--model", str(root / task_type), "--input", str(path), "--out", str(out_file)]
        )
        if rc == 0:
            results = [json.loads(x) for x in out_file.read_text("utf-8").splitlines()]
            lines = [
                x
                for x in content.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
                if x.strip()
            ]
            assert len(results) == len(lines)
            if suffix == "txt" and task_type == "qa":
                raise AssertionError("plain text lines cannot fill a QA model's question/context")
            assert kind not in ("invalid_utf8", "empty", "latin1"), kind
            if kind in SAME:
                assert [r["input"] for r in results] == [
                    json.loads(x) if suffix == "jsonl" else x for x in clean.decode().splitlines()
                ]
        else:
            message = assert_one_line_error(rc, err, path)
            assert not out_file.exists()
            if bad_line is not None:
                assert f"{path}:{bad_line}: " in message, message


def test_predict_missing_or_wrong_field_names_file_and_line(predictors, monkeypatch, tmp_path):
    from blurbkit.inference.predictor import Predictor

    root, loaded = predictors
    monkeypatch.setattr(Predictor, "load", classmethod(lambda cls, path, **kw: loaded[str(path)]))
    path = tmp_path / "in.jsonl"
    for line, message in (
        ('{"txt": "a"}', "lacks the field 'text'"),
        ('{"text": 42}', "field 'text' must be a string"),
    ):
        path.write_text('{"text": "fine"}\n\n' + line + "\n")
        rc, _, err = run_cli(["predict", "--model", str(root / "ner"), "--input", str(path)])
        assert message in assert_one_line_error(rc, err, path, line=3)


# ---- 4. user dataset TOML files and `datasets add` -----------------------------------------------
TOML_VALUES = ['"../../etc/passwd"', '"/etc/passwd"', "42", "[]", "{}", '"x"', "true", "nan", "inf", "-1", "0",
               '{ train = "../train.tsv", dev = "dev.tsv", test = "test.tsv" }', "{ train = 1 }", '["a", 1]',
               '"~nosuchuser_zz/x"', '{ lr = "fast" }', '{ train = "sub/../../x.tsv" }', '"qa"', '"hoc"',
               '"similarity"', '"pico"', '"nosuchreader"']  # fmt: skip
TOML_KEYS = ["task_type", "reader", "source", "files", "entity_types", "labels", "max_length", "seeds", "recipe",
             "in_blurb", "published", "title", "negative_label", "unit", "original_text"]  # fmt: skip


@FUZZ
@given(data=st.data())
def test_user_dataset_toml_fuzz(data):
    with scratch() as tmp:
        root = Path(tmp)
        files = {f"{s}.tsv": b"Selegiline\tB-Chemical\ninduced\tO\n" for s in ("train", "dev", "test")}
        write_dataset(root, "fz_toml", "conll", files)
        (root / "train.tsv").write_bytes(b"secret\tO\n")  # outside the source folder: must never be read
        toml = user_registry_dir() / "fz_toml.toml"
        clean = toml.read_bytes()
        value = "no value"
        if data.draw(st.booleans()):
            key, value = data.draw(st.sampled_from(TOML_KEYS)), data.draw(st.sampled_from(TOML_VALUES))
            lines = [x for x in clean.decode().splitlines() if not x.startswith(f"{key} =")]
            content = ("\n".join(lines) + f"\n{key} = {value}\n").encode()
            kind = f"{key}={value}"
        else:
            kind, content, _ = data.draw(mutated(clean, " = "))
        toml.write_bytes(content)
        rc, err, out = prepare(root, "fz_toml")
        if rc == 0 and "fz_toml" in json.loads((out / "manifest.json").read_text("utf-8"))["skipped"]:
            # e.g. the source line dropped: skipped as "no --source given", as for any dataset without one;
            # a skip is earned only when the TOML no longer names the dataset's own folder
            assert f'source = "{root / "fz_toml"}"'.encode() not in content, kind
        elif rc == 0:
            records = prepared_records(out, "fz_toml")
            assert all(r["tokens"] != ["secret"] for split in records.values() for r in split), kind
        else:
            message = assert_one_line_error(rc, err)
            assert (
                str(toml) in message or str(root) in message or value.strip('"').split("/")[0] in message
            ), message
            if kind.startswith("files=") and value.startswith("{") and "../" in value:
                assert "leaves the source folder" in message, message


def test_path_traversal_in_files_is_refused(tmp_path):
    files = {f"{s}.tsv": b"a\tO\n" for s in ("train", "dev", "test")}
    source = write_dataset(tmp_path, "trav", "conll", files)
    (tmp_path / "outside.tsv").write_bytes(b"secret\tO\n")
    toml = user_registry_dir() / "trav.toml"
    clean = toml.read_text("utf-8")
    for value in ("../outside.tsv", "/etc/passwd", "x/../../outside.tsv"):
        toml.write_text(clean.replace('train = "train.tsv"', f'train = "{value}"'))
        rc, err, _ = prepare(tmp_path, "trav")
        assert "leaves the source folder" in assert_one_line_error(rc, err, toml), err
    toml.unlink()
    rc, _, err = run_cli(
        [
            "datasets",
            "add",
            "trav2",
            "--format",
            "conll",
            "--source",
            str(source),
            "--train",
            "../outside.tsv",
        ]
    )
    assert "leaves the source folder" in assert_one_line_error(rc, err)
    assert not (user_registry_dir() / "trav2.toml").exists()


@FUZZ
@given(data=st.data())
def test_datasets_add_fuzz(data):
    with scratch() as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for s in ("train", "dev", "test"):
            (source / f"{s}.tsv").write_bytes(data.draw(conll_file()))
        kind, content, bad_line = data.draw(mutated((source / "train.tsv").read_bytes(), "\t"))
        (source / "train.tsv").write_bytes(content)
        target = user_registry_dir() / "fz_add.toml"
        target.unlink(missing_ok=True)
        rc, _, err = run_cli(["datasets", "add", "fz_add", "--format", "conll", "--source", str(source)])
        if rc == 0:
            assert target.is_file()
            assert kind not in ("invalid_utf8", "empty", "latin1"), kind
        else:
            message = assert_one_line_error(rc, err, source)
            assert not target.exists()
            assert kind not in SAME + ("none",), message
            if bad_line is not None:
                assert f"train.tsv:{bad_line}: " in message, message


# ---- 5. model directories and stdout -------------------------------------------------------------
def _model_copy(predictors, tmp_path, task_type="qa") -> Path:
    root, _ = predictors
    copy = tmp_path / "model"
    shutil.copytree(root / task_type, copy)
    return copy


@pytest.mark.parametrize(
    "case",
    ["model_header", "model_half", "head_header", "head_half", "config_llama", "config_gpt2", "config_garbage",
     "config_list", "config_field_type", "vocab_without_unk", "pickle_only", "recipe_labels"],
)  # fmt: skip
def test_broken_model_directory_is_one_line(predictors, tmp_path, case):
    model = _model_copy(predictors, tmp_path)
    if case.startswith(("model", "head")):
        file = model / ("model.safetensors" if case.startswith("model") else "blurbkit_head.safetensors")
        size = 4 if case.endswith("header") else file.stat().st_size // 2
        file.write_bytes(file.read_bytes()[:size])
    elif case == "config_llama":
        (model / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 16}))
    elif case == "config_gpt2":
        (model / "config.json").write_text(
            json.dumps({"model_type": "gpt2", "n_embd": 16, "n_head": 2, "n_layer": 1})
        )
    elif case == "config_garbage":
        (model / "config.json").write_bytes(b"\x00\xffgarbage")
    elif case == "config_list":
        (model / "config.json").write_text("[1, 2]")
    elif case == "config_field_type":  # a hand-edited config: the tokenizer reads it first
        config = json.loads((model / "config.json").read_text("utf-8"))
        (model / "config.json").write_text(json.dumps(config | {"hidden_dropout_prob": "0.1"}))
    elif case == "vocab_without_unk":  # loads, then fails on the first word it lacks
        tokenizer = json.loads((model / "tokenizer.json").read_text("utf-8"))
        tokenizer["model"]["vocab"].pop("[UNK]")
        (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    elif case == "pickle_only":
        (model / "model.safetensors").unlink()
        (model / "pytorch_model.bin").write_bytes(b"\x80\x04\x95pickle that must never be loaded")
    elif case == "recipe_labels":
        recipe = json.loads((model / "blurbkit.json").read_text("utf-8"))
        (model / "blurbkit.json").write_text(
            json.dumps(recipe | {"labels": ["yes", "no", "maybe", "unsure"]})
        )
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"question": "q?", "context": "c"}\n')
    rc, _, err = run_cli(
        ["predict", "--model", str(model), "--input", str(inputs), "--out", str(tmp_path / "o.jsonl")]
    )
    message = assert_one_line_error(rc, err, model)
    assert not (tmp_path / "o.jsonl").exists()
    if case == "pickle_only":
        assert "pickled" in message


def test_finetune_refuses_a_truncated_encoder(predictors, tmp_path, shared_data):
    from blurbkit.models.tiny import build_tiny_bert

    model = build_tiny_bert(tmp_path / "enc", hidden=16, layers=1, heads=2)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    rc, _, err = run_cli(
        [
            "finetune",
            "--dataset",
            "gad",
            "--data",
            str(shared_data),
            "--model",
            str(model),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
        ]
    )
    assert "cannot load the model weights" in assert_one_line_error(rc, err, model)


def test_predict_to_a_full_device_is_one_line(predictors, tmp_path):
    """`blurbkit predict > /dev/full`: one line, exit 2, no traceback (a subprocess: real stdout)."""
    import os
    import subprocess
    import sys

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    root, _ = predictors
    inputs = tmp_path / "in.txt"
    inputs.write_text("Selegiline induced hypotension\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "blurbkit",
                "predict",
                "--model",
                str(root / "ner"),
                "--input",
                str(inputs),
            ],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=240,
        )
    lines = [x for x in done.stderr.splitlines() if x.startswith("blurbkit")]  # not the progress bar
    assert done.returncode == 2 and len(lines) == 1 and "no space left" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
