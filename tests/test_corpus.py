"""Corpus reading, cleaning, dedupe, test-split filtering and sub-domain selection (tiny corpora made here)."""

from __future__ import annotations

import gzip
import json
from importlib import resources

import pytest

from blurbkit.cli.main import main
from blurbkit.errors import BlurbkitError
from blurbkit.pretrain.corpus import iter_documents
from blurbkit.pretrain.corpus_build import build_corpus
from blurbkit.pretrain.select import (
    TermMatcher,
    _conll_mentions,
    _conll_sentences,
    clean_terms,
    load_topic_terms,
    select_corpus,
    topic_parts,
)
from blurbkit.pretrain.testsets import TestIndex
from blurbkit.pretrain.text import normalize, split_sentences, text_key

ABSTRACT = ("Naloxone reverses the antihypertensive effect of clonidine in rats. The effect of clonidine, "
            "e.g. on blood pressure, was studied by Smith et al. in 1990. Heart rate fell by 2.5 beats per min. "
            "These findings indicate that central alpha-adrenoceptor stimulation involves opiate receptors.")


def test_normalise_and_split():
    assert normalize("a\u00a0b  \t c\uff21") == "a b cA"
    sentences = split_sentences(ABSTRACT)
    assert len(sentences) == 4, sentences
    assert sentences[1].startswith("The effect of clonidine, e.g. on blood")
    # lower-cased text (SumPubMed) still splits, but not after initials like "p. syringae"
    lower = "in p. syringae the gene is active. the mutant is not."
    assert split_sentences(lower) == ["in p. syringae the gene is active.", "the mutant is not."]
    assert text_key("( PKC ) isozyme ,") == text_key("(PKC) isozyme,") == "pkc isozyme"


def _write_inputs(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    with gzip.open(folder / "a.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "1", "pmid": "111", "title": "Clonidine and naloxone.", "abstract": ABSTRACT}) + "\n")
        handle.write(json.dumps({"id": "2", "pmid": "111", "title": "Same PMID again.", "abstract": ABSTRACT + " More."}) + "\n")
        handle.write(json.dumps({"id": "3", "title": "Copy.", "abstract": ABSTRACT.upper()}) + "\n")  # not a dup: title differs
        handle.write(json.dumps({"id": "4", "text": "too short"}) + "\n")
    (folder / "b.PubTator").write_text(
        "999|t|A test abstract title about lymphoma in patients treated with drugs.\n"
        "999|a|" + ABSTRACT.replace("rats", "mice") + "\n999\t0\t3\tA\tX\tY\n\n"
        "555|t|Insulin signalling in cardiomyocytes of diabetic rats after long exercise.\n"
        "555|a|Insulin resistance developed in cardiomyocytes of the treated diabetic animals after eight weeks of training.\n\n",
        encoding="utf-8")
    (folder / "c.csv").write_text('pubmedID,title,abstract\n222,"Lidocaine study.","' + ABSTRACT.replace("clonidine", "lidocaine") + '"\n',
                                  encoding="utf-8")
    (folder / "d.txt").write_text("123 NEG Clonidine caused dizziness in a patient taking naloxone for a long time.\n"
                                  "123 NEG The patient recovered after lidocaine and morphine were stopped in hospital.\n",
                                  encoding="utf-8")
    return folder


def test_readers_and_build(tmp_path):
    folder = _write_inputs(tmp_path)
    docs = list(iter_documents([folder]))
    assert {d.source for d in docs} == {"a.jsonl.gz", "b.PubTator", "c.csv", "d.txt"}
    assert [d.pmid for d in docs if d.source == "c.csv"] == ["222"]
    ade = [d for d in docs if d.source == "d.txt"][0]
    assert ade.pmid == "123" and len(ade.sentences) == 2

    index = TestIndex(window=6)
    index.pmids.add("999")
    index.add_sentence("Insulin resistance developed in cardiomyocytes of the treated diabetic animals after eight weeks of training.")
    out = tmp_path / "corpus.jsonl.gz"
    report = build_corpus([folder], out, test_index=index, min_words=8)
    assert report["dropped"] == {"duplicate_pmid": 1, "test_pmid": 1, "test_sentence": 1, "too_short": 1}
    assert report["documents_kept"] == 4
    with gzip.open(out, "rt", encoding="utf-8") as handle:
        kept = [json.loads(line) for line in handle]
    assert kept[0]["sentences"][0] == "Clonidine and naloxone."
    # the output reads back as a corpus, and as plain text too
    assert len(list(iter_documents([out]))) == 4
    text_out = tmp_path / "corpus.txt"
    build_corpus([out], text_out, min_words=8)
    assert len(list(iter_documents([text_out]))) == 4
    assert "\n\n" in text_out.read_text("utf-8")


def test_masked_test_sentences_drop_by_windows(tmp_path):
    index = TestIndex(window=5)
    index.add_sentence("@CHEMICAL$ strongly inhibited the activity of purified @GENE$ in all the tested cell lines.", exact=False)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "x.txt").write_text("Aspirin strongly inhibited the activity of purified COX-1 in all the tested cell lines today.\n"
                                  "Nothing in this line overlaps with the test set at all, it is only filler text.\n", encoding="utf-8")
    report = build_corpus([folder], tmp_path / "o.jsonl", test_index=index, min_words=5, min_windows=2)
    assert report["dropped"] == {"test_overlap": 1}


def test_bad_corpora(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(BlurbkitError, match="no documents kept"):
        build_corpus([empty], tmp_path / "o.jsonl.gz")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00\x01garbage\x80\x81")
    with pytest.raises(BlurbkitError, match=r"bin\.txt:1: byte 0xff is not valid UTF-8"):
        build_corpus([binary], tmp_path / "o.jsonl.gz")
    import gzip

    latin = tmp_path / "latin.txt.gz"  # the bad byte far past the decoder's first chunk: its own line is named
    latin.write_bytes(gzip.compress(("Aspirin helps patients with pain.\n" * 3000).encode() + b"caf\xe9 au lait\n"))
    with pytest.raises(BlurbkitError, match=r"latin\.txt\.gz:3001: byte 0xe9 is not valid UTF-8"):
        build_corpus([latin], tmp_path / "o.jsonl.gz")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "ok"}\n{not json\n', encoding="utf-8")
    with pytest.raises(BlurbkitError, match=r"bad.jsonl:2: not valid JSON"):
        build_corpus([bad_json], tmp_path / "o.jsonl.gz")
    assert not (tmp_path / "o.jsonl.gz").exists()
    with pytest.raises(BlurbkitError, match="unknown corpus format"):
        build_corpus([tmp_path / "x.parquet"] if (tmp_path / "x.parquet").write_bytes(b"x") else [], tmp_path / "o.jsonl")
    assert main(["corpus", "build", str(empty), "--out", str(tmp_path / "o.jsonl.gz"), "--no-test-filter"]) == 2


def test_select_topic(tmp_path):
    folder = _write_inputs(tmp_path)
    matcher = TermMatcher(["clonidine", "beta blockers", "naloxone"])
    hits = matcher.hits(["beta", "blockers", "and", "clonidine", "then", "clonidine"])
    assert hits == {("beta", "blockers"): 1, ("clonidine",): 2}
    terms = load_topic_terms("drug")
    assert "clonidine" in terms and "naloxone" in terms
    assert len(load_topic_terms("chemical+protein")) > len(load_topic_terms("chemical"))
    # chemical+protein keeps only documents that mention both kinds (ChemProt's pairs)
    docs = tmp_path / "cp.jsonl"
    docs.write_text("".join(json.dumps({"id": str(n), "text": t}) + "\n" for n, t in enumerate([
        "Aspirin and ibuprofen and aspirin again with naloxone.",  # chemicals only
        "Insulin receptor and BRCA1 bind p53 and BRCA1.",  # proteins only
        "Naloxone and aspirin blocked BRCA1 and p53 in cells.",  # both
    ])), encoding="utf-8")
    parts = topic_parts("chemical+protein")
    assert len(parts) == 2
    both = select_corpus([docs], tmp_path / "both.jsonl", [t for p in parts for t in p], every_part=parts)
    either = select_corpus([docs], tmp_path / "either.jsonl", load_topic_terms("chemical+protein"))
    assert both["every_part"] and both["documents_kept"] < either["documents_kept"]
    assert "blocked BRCA1" in (tmp_path / "both.jsonl").read_text("utf-8")
    kept = (tmp_path / "both.jsonl").read_text("utf-8")
    assert "Aspirin and ibuprofen" not in kept and "Insulin receptor" not in kept
    shared = sorted(set(parts[0]) & set(parts[1]))  # in both lists: no evidence of either kind alone
    assert shared
    (tmp_path / "shared.jsonl").write_text(json.dumps({"id": "s", "text": f"{shared[0]} and BRCA1 and p53 and BRCA1."}) + "\n")
    with pytest.raises(BlurbkitError, match="no document"):
        select_corpus([tmp_path / "shared.jsonl"], tmp_path / "s.jsonl", [t for p in parts for t in p], every_part=parts)
    report = select_corpus([folder], tmp_path / "drug.jsonl", terms, min_hits=3, min_distinct=2)
    assert 0 < report["documents_kept"] < report["documents_read"]
    user = tmp_path / "terms.txt"
    user.write_text("# my list\ninsulin\ncardiomyocytes\n", encoding="utf-8")
    assert main(["corpus", "select", "--corpus", str(folder), "--topic", str(user), "--out", str(tmp_path / "ins.txt"),
                 "--min-hits", "2"]) == 0
    assert "Insulin" in (tmp_path / "ins.txt").read_text("utf-8")
    assert main(["corpus", "select", "--corpus", str(folder), "--topic", "nonsense", "--out", str(tmp_path / "n.txt")]) == 2


def test_test_index_from_shared_data(shared_data):
    from blurbkit.pretrain.testsets import build_test_index

    index = build_test_index(shared_data)
    assert {"hoc", "pubmedqa", "ebm_pico", "ddi"} <= set(index.sources)
    assert "12553062" in index.pmids  # a HoC test PMID
    assert len(index.pmids) > 1000


def test_user_dataset_test_split_is_filtered(tmp_path):
    """A dataset registered in BLURBKIT_HOME has its test sentences removed, like a BLURB one."""
    from blurbkit.pretrain.testsets import build_test_index
    from blurbkit.tasks.registry import user_registry_dir

    source = tmp_path / "my_ner"
    source.mkdir()
    test_sentence = "Clonidine lowered the blood pressure of every hypertensive patient in the trial ."
    (source / "test.tsv").write_text("".join(f"{w}\tO\n" for w in test_sentence.split()) + "\n", encoding="utf-8")
    for split in ("train", "devel"):
        (source / f"{split}.tsv").write_text("Other\tO\ntext\tO\n\n", encoding="utf-8")
    user_registry_dir().mkdir(parents=True, exist_ok=True)
    (user_registry_dir() / "my_ner.toml").write_text(
        f'task_type = "ner"\nreader = "conll"\nsource = "{source}"\nentity_types = ["Gene"]\nin_blurb = false\n'
        'files = { train = "train.tsv", dev = "devel.tsv", test = "test.tsv" }\n', encoding="utf-8")
    index = build_test_index(tmp_path / "no_blurb_data")  # only the user dataset is present
    assert index.sources == {"my_ner": {"sentences": 1}}
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "x.txt").write_text(
        "Clonidine lowered the blood pressure of every hypertensive patient in the trial.\nIt was safe.\n\n"
        "Naloxone reversed the effect of clonidine on the heart rate of the rats in this study.\n", encoding="utf-8")
    report = build_corpus([folder], tmp_path / "o.jsonl", test_index=index, min_words=3)
    assert report["dropped"] == {"test_sentence": 1} and report["documents_kept"] == 1


def test_a_test_sentence_that_nfkc_changes_still_matches_its_own_text():
    from blurbkit.pretrain.testsets import TestIndex
    from blurbkit.pretrain.text import normalize, word_tokens

    sentence = "Cells were treated with 10 \u00b5M cisplatin for 24 hours before harvest and then lysed."
    index = TestIndex()
    index.add_sentence(sentence)
    assert index.sentence_hit(normalize(sentence))  # the corpus reads NFKC text: µ (micro sign) -> μ
    assert index.window_hits(word_tokens(normalize(sentence)), 1) == 1


def test_selecting_from_an_empty_corpus_leaves_no_output_and_names_the_input(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "s.jsonl.gz"
    with pytest.raises(BlurbkitError, match=f"{empty}: the corpus has no documents"):
        select_corpus([empty], out, ["aspirin"])
    assert not out.exists() and list(tmp_path.iterdir()) == [empty]
    assert main(["vocab", "build", "--corpus", str(empty), "--out", str(tmp_path / "v")]) == 2
    assert f"{empty}: the corpus has no text" in capsys.readouterr().err


def test_a_word_the_training_text_rarely_annotates_is_not_a_term(tmp_path):
    # "can" tagged as a gene once among many plain uses; "insulin" tagged wherever it occurs
    plain = "This\tO\ncan\tO\nhelp\tO\n.\tO\n\n"
    tagged = "insulin\tB\nand\tO\nCAN\tB\nbind\tO\n.\tO\n\n"
    rows = tagged + plain * 9 + "Insulin\tB\nrose\tO\n\n"
    path = tmp_path / "train.tsv"
    path.write_text(rows, encoding="utf-8")
    mentions = list(_conll_mentions(path))
    assert sorted(mentions) == ["CAN", "Insulin", "insulin"]
    assert clean_terms(mentions) == ["can", "insulin"]  # without the text: every mention
    assert clean_terms(mentions, list(_conll_sentences(path))) == ["insulin"]  # can: 1 of 10 occurrences < 20%


def test_the_shipped_topic_lists_hold_no_common_words():
    chemical, protein = topic_parts("chemical+protein")  # in the order of the topic name
    assert {"can", "set", "rats", "area"}.isdisjoint(protein) and "map" not in chemical
    assert {"insulin", "brca1", "p53"} <= set(protein) and {"cocaine", "dexamethasone"} <= set(chemical)


def test_corpus_terms_rebuilds_the_shipped_lists_from_the_training_data(shared_data, tmp_path):
    for topic in ("chemical", "protein", "drug"):
        out = tmp_path / f"{topic}.txt"
        assert main(["corpus", "terms", "--topic", topic, "--data", str(shared_data), "--out", str(out)]) == 0
        shipped = resources.files("blurbkit.pretrain").joinpath(f"terms_{topic}.txt").read_text("utf-8")
        assert out.read_text("utf-8") == shipped, topic
