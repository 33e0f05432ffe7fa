"""ONNX export of heads that read the word mask (BiLSTM, BiLSTM-CRF: the packed LSTM runs over each
row's own words): the graph takes the true mask as an input, so rows shorter than the batch's
longest give the torch model's labels; the export check compares against the torch model itself
on rows of different lengths; an export made without the mask input is refused."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from blurbkit.errors import BlurbkitError
from blurbkit.inference import onnx
from blurbkit.inference.onnx import EXPORT_DIR, MANIFEST, export
from blurbkit.inference.predictor import Predictor
from blurbkit.models.model import BlurbModel

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_models"
# One long sentence and short ones in one batch: padded words in every short row.
TEXTS = ["Aspirin-induced hepatitis was treated with N-acetylcysteine and cisplatin and more words here today .",
         "Cisplatin", "x y", "aspirin heparin", "The patient received 40 mg of doxorubicin ."]


def _model_with_head(root: Path, head: str) -> Path:
    """The tiny NER fixture with a randomly initialised `head`: large LSTM and emission weights, so
    labels differ by word; the CRF's transitions keep their init (scaled by 100, large ones would
    decide every path alone, whatever the LSTM saw)."""
    model, tokenizer = BlurbModel.load(FIXTURES / "ner_bio")
    torch.manual_seed(2)
    tagger = BlurbModel(model.encoder, replace(model.recipe, head=head, scheme="bio"))
    for name, parameter in tagger.head.named_parameters():
        if not name.startswith("crf."):
            torch.nn.init.normal_(parameter, std=1.0)
    out = root / head
    tagger.save(out, tokenizer)
    return out


@pytest.mark.parametrize("head", ["bilstm", "bilstm_crf"])
def test_onnx_gives_the_torch_labels_for_rows_of_different_lengths(tmp_path, head):
    model_dir = _model_with_head(tmp_path, head)
    export(model_dir)
    exact = Predictor.load(model_dir, settings={"precision": "fp32"}).predict(TEXTS)
    assert Predictor.load(model_dir, backend="onnx").predict(TEXTS) == exact
    assert any(exact), "the random head tags something"
    assert "word_mask" in json.loads((model_dir / EXPORT_DIR / MANIFEST).read_text())["inputs"]


def test_the_export_check_catches_a_graph_that_loses_the_row_lengths(tmp_path, monkeypatch):
    model_dir = _model_with_head(tmp_path, "bilstm")

    def maskless(self, input_ids, attention_mask, token_type_ids, word_positions, word_mask):
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                 "word_positions": word_positions, "word_mask": word_positions >= 0}  # every padded word "real"
        return self.model(batch)[0]

    monkeypatch.setattr(onnx._Graph, "forward", maskless)
    with pytest.raises(BlurbkitError, match="differ from the torch model's"):
        export(model_dir)
    assert not (model_dir / EXPORT_DIR).exists()


def test_an_export_without_the_word_mask_input_is_refused(tmp_path):
    model_dir = tmp_path / "ner"
    shutil.copytree(FIXTURES / "ner_bio", model_dir)
    export(model_dir)
    manifest_path = model_dir / EXPORT_DIR / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["inputs"].remove("word_mask")  # as written by earlier versions
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BlurbkitError, match="predates the graph's word_mask input; run `blurbkit export"):
        Predictor.load(model_dir, backend="onnx")
