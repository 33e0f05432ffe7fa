"""Tagging schemes: hand cases, lenient decoding of predictions, and round trips on every NER train set."""

from __future__ import annotations

import pytest

from blurbkit.errors import BlurbkitError
from blurbkit.tagging import convert_tags, tags_to_spans

NER_DATASETS = ["bc5chem", "bc5disease", "ncbi_disease", "bc2gm", "jnlpba"]


def test_hand_cases():
    bio = ["B-X", "I-X", "I-X", "O", "B-X", "B-Y", "I-Y", "O", "B-X"]
    bioul = ["B-X", "I-X", "L-X", "O", "U-X", "B-Y", "L-Y", "O", "U-X"]
    io = ["I-X", "I-X", "I-X", "O", "I-X", "I-Y", "I-Y", "O", "I-X"]
    assert convert_tags(bio, "bio", "bioul") == bioul
    assert convert_tags(bioul, "bioul", "bio") == bio
    assert convert_tags(bio, "bio", "io") == io
    assert convert_tags(io, "io", "bio") == ["B-X", "I-X", "I-X", "O", "B-X", "B-Y", "I-Y", "O", "B-X"]
    assert convert_tags(io, "io", "bioul") == bioul
    assert convert_tags([], "bio", "bioul") == []


def test_io_merges_adjacent_spans_of_one_type():
    assert convert_tags(["B-X", "B-X", "I-X"], "bio", "io") == ["I-X"] * 3
    assert convert_tags(["I-X"] * 3, "io", "bio") == ["B-X", "I-X", "I-X"]


def test_predicted_sequences_are_read_leniently():
    # conlleval reading: an I- that continues nothing starts a span; L/U close it.
    assert tags_to_spans(["O", "I-X", "I-X"]) == [(1, 3, "X")]
    assert tags_to_spans(["B-X", "I-Y"]) == [(0, 1, "X"), (1, 2, "Y")]
    assert tags_to_spans(["B-X", "O", "L-X"]) == [(0, 1, "X"), (2, 3, "X")]
    assert tags_to_spans(["U-X", "I-X", "L-X", "I-X"]) == [(0, 1, "X"), (1, 3, "X"), (3, 4, "X")]
    assert tags_to_spans(["S-X", "B-X", "E-X"]) == [(0, 1, "X"), (1, 3, "X")]  # BIOES spelling
    assert convert_tags(["B-X", "I-X", "B-X"], "bioul", "bio") == ["B-X", "I-X", "B-X"]
    assert convert_tags(["I-X", "I-Y"], "bioul", "bio") == ["B-X", "B-Y"]


def test_bad_tags_and_schemes_are_errors():
    with pytest.raises(BlurbkitError, match="scheme"):
        convert_tags(["O"], "bio", "bilou")
    with pytest.raises(BlurbkitError, match="PREFIX-TYPE"):
        convert_tags(["X-Chem"], "bio", "io")
    with pytest.raises(BlurbkitError):
        convert_tags(["B-"], "bio", "io")


@pytest.mark.parametrize("dataset", NER_DATASETS)
def test_round_trip_on_every_ner_training_set(dataset, shared_data):
    from blurbkit.data.load import load_split

    records = load_split(dataset, "train", data=shared_data)
    assert records
    merged = 0
    for record in records:
        tags = record["tags"]
        spans = tags_to_spans(tags)
        bioul = convert_tags(tags, "bio", "bioul")
        assert tags_to_spans(bioul) == spans
        assert convert_tags(bioul, "bioul", "bio") == convert_tags(tags, "bio", "bio"), record["id"]
        # The gold files are valid IOB2: converting back reproduces them tag for tag.
        assert convert_tags(bioul, "bioul", "bio") == tags, record["id"]
        back = tags_to_spans(convert_tags(convert_tags(tags, "bio", "io"), "io", "bio"))
        if back != spans:  # only adjacent same-type spans may merge under IO
            merged += 1
            expected = []
            for start, end, kind in spans:
                if expected and expected[-1][1] == start and expected[-1][2] == kind:
                    expected[-1] = (expected[-1][0], end, kind)
                else:
                    expected.append((start, end, kind))
            assert back == expected, record["id"]
    # How often IO loses a boundary (e.g. JNLPBA ~5% of sentences): shown with -rP / -s.
    print(f"{dataset}: IO merges adjacent same-type spans in {merged} of {len(records)} sentences")
