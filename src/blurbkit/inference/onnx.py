"""Smaller, faster serving: a fine-tuned token-level model exported to ONNX, run by ONNX Runtime in
fp32 or with int8 dynamic quantisation. Opt-in: the default stays the exact torch model.

`export(model_dir)` writes ``MODEL_DIR/onnx/`` (or ``out``): ``model.onnx`` (encoder + first-subword
featurizer + the head's scores, one graph), ``model_int8.onnx`` with ``int8=True`` (weights of the
MatMuls as int8, activations quantised per batch: onnxruntime.quantization.quantize_dynamic), and
``export.json``, which records the sha256 of the weights it was made from. The fp32 graph is
checked against the torch model on a sample batch before anything is written (one line if the
scores differ by more than `TOLERANCE`).

``Predictor.load(dir, backend="onnx" | "onnx-int8")`` then runs the forward pass in ONNX Runtime
(`OnnxForward`); tokenisation, batching and decoding (a CRF's Viterbi too) stay blurbkit's, so
the outputs have the same form. An export whose weights no longer match the model directory's is
refused with one line (run the export again).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import atomic_dir, check_replaceable, clean_stale, sha256_file
from blurbkit.models.loading import HEAD_FILE
from blurbkit.models.model import BlurbModel

EXPORT_DIR = "onnx"
MANIFEST = "export.json"
FILES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx"}
BACKENDS = ("torch", *FILES)
OPSET = 17
TOLERANCE = 1e-3  # largest |score difference| between the fp32 graph and the torch model accepted at export
INPUTS = ("input_ids", "attention_mask", "token_type_ids", "word_positions", "word_mask")
SAMPLE = ["Aspirin-induced hepatitis was treated with N-acetylcysteine .", "Cisplatin .",
          "The patient received 40 mg of doxorubicin and cyclophosphamide daily for two weeks ."]


class _Graph(torch.nn.Module):
    """The model as a function of plain tensors: what ONNX records."""

    def __init__(self, model: BlurbModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                word_positions: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        # The word mask is an input, not derived from word_positions: padded words have position 0
        # (runtime/batching.py), and a head that reads the mask (BiLSTM: packed by row length) must
        # see each row's true length.
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                 "word_positions": word_positions, "word_mask": word_mask}
        return self.model(batch)[0]


def weights_digest(model_dir: Path) -> dict[str, str]:
    return {name: sha256_file(model_dir / name) for name in ("model.safetensors", HEAD_FILE)
            if (model_dir / name).is_file()}


def check_exportable(model: BlurbModel, model_dir: Path) -> None:
    from blurbkit.models.featurizers import FEATURIZERS

    recipe = model.recipe
    # The graph's inputs are a token model's (word positions and mask): a featurizer that reads words.
    if "token" not in FEATURIZERS.get(recipe.featurizer).requires:
        raise BlurbkitError(f"ONNX export is for token-classification models (NER/PICO, a word featurizer such as "
                            f"first_subword); this is a {recipe.task_type} model with featurizer {recipe.featurizer}",
                            path=model_dir)


def sample_batch(tokenizer: Any, texts: list[str] = SAMPLE) -> dict[str, torch.Tensor]:
    """A padded batch of raw-text sentences split on spaces, as the runner feeds the model: padded
    words have position 0 and are off in the word mask (runtime/batching.py:collate)."""
    words = [t.split() for t in texts]
    encoded = tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
    positions = torch.zeros((len(texts), max(1, max(len(w) for w in words))), dtype=torch.long)
    mask = torch.zeros_like(positions, dtype=torch.bool)
    for row in range(len(texts)):
        seen: set[int] = set()
        for position, word in enumerate(encoded.word_ids(row)):
            if word is not None and word not in seen:
                seen.add(word)
                positions[row, word] = position
                mask[row, word] = True
    batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
             "token_type_ids": encoded.get("token_type_ids", torch.zeros_like(encoded["input_ids"])),
             "word_positions": positions, "word_mask": mask}
    return batch


@contextmanager
def _eager_attention(encoder: Any) -> Iterator[None]:
    """Trace plain matmul attention: the graph then holds no torch-version-specific SDPA mask code."""
    before = getattr(encoder.config, "_attn_implementation", None)
    changed = before not in (None, "eager") and hasattr(encoder, "set_attn_implementation")
    if changed:
        encoder.set_attn_implementation("eager")
    try:
        yield
    finally:
        if changed:
            encoder.set_attn_implementation(before)


def export(model_dir: str | Path, out: str | Path | None = None, int8: bool = False, progress: bool = False) -> dict[str, Any]:
    """Write the ONNX graph(s) of a fine-tuned token-level model; returns the manifest."""
    import onnxruntime

    model_dir = Path(model_dir)
    if not model_dir.is_dir():  # before the check below would make it (as MODEL/onnx's parent)
        raise BlurbkitError("model directory not found" if not model_dir.exists() else "not a directory", path=model_dir)
    out = Path(out) if out is not None else model_dir / EXPORT_DIR
    check_replaceable(out, MANIFEST, "an earlier export")  # before the model loads; never a user's folder
    model, tokenizer = BlurbModel.load(model_dir)
    check_exportable(model, model_dir)
    model.eval()
    batch = sample_batch(tokenizer)
    args = tuple(batch[name] for name in INPUTS)
    axes = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
            "token_type_ids": {0: "batch", 1: "length"}, "word_positions": {0: "batch", 1: "words"},
            "word_mask": {0: "batch", 1: "words"}, "scores": {0: "batch", 1: "words"}}
    clean_stale(out)  # what a killed earlier write left beside it (and an interrupted replace's old version)
    with atomic_dir(out) as tmp:
        fp32 = tmp / FILES["onnx"]
        with _eager_attention(model.encoder), torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on Python control flow over shapes
            # The reference is the torch model's own forward (not the wrapper being exported) on
            # rows of different lengths, so a graph that lost a row's length would differ here.
            reference = model(batch)[0].numpy()
            try:
                torch.onnx.export(_Graph(model), args, str(fp32), dynamo=False, input_names=list(INPUTS),
                                  output_names=["scores"], dynamic_axes=axes, opset_version=OPSET)
            except Exception as err:  # the tracer's own errors have no common base class
                first = (str(err).splitlines() or [type(err).__name__])[0]
                raise BlurbkitError(f"this model could not be exported to ONNX ({type(err).__name__}: {first})",
                                    path=model_dir) from None
        words = batch["word_mask"].numpy()  # padded words' scores are never decoded
        difference = float(abs(OnnxForward(fp32).scores(batch) - reference)[words].max())
        if not difference <= TOLERANCE:
            raise BlurbkitError(f"the ONNX graph's scores differ from the torch model's by {difference:.2g} "
                                f"(more than {TOLERANCE}); not written", path=model_dir)
        files = {"onnx": FILES["onnx"]}
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            logging.disable(logging.WARNING)  # a generic "consider pre-processing" notice on every call
            try:
                # reduce_range: 7-bit weights. ONNX Runtime's int8 kernels on x86 CPUs without VNNI
                # (AVX2 and plain AVX512) add u8 x s8 pairs in 16 bits and saturate on full-range
                # weights: a real AVX2-only EPYC put a test's scores 0.25 off (0.013 with reduce_range).
                quantize_dynamic(str(fp32), str(tmp / FILES["onnx-int8"]), weight_type=QuantType.QInt8, per_channel=True,
                                 reduce_range=True)
            finally:
                logging.disable(logging.NOTSET)
            files["onnx-int8"] = FILES["onnx-int8"]
        manifest = {"source": weights_digest(model_dir), "files": files, "opset": OPSET,
                    "max_abs_score_difference_fp32": difference, "inputs": list(INPUTS),
                    "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                    "int8": "onnxruntime.quantization.quantize_dynamic, weights QInt8 per output channel, 7-bit range"
                    if int8 else None, "int8_reduce_range": True if int8 else None}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest | {"out": str(out)}


class OnnxForward:
    """The model's forward pass in ONNX Runtime: batch dict in, (scores, word mask) out, as BlurbModel."""

    def __init__(self, path: Path, threads: int | None = None, name: str = "onnx") -> None:
        import onnxruntime

        self.name = name  # the backend name Predictor reports

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()  # as many as torch would use
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            first = (str(err).splitlines() or [type(err).__name__])[0]
            raise BlurbkitError(f"not a usable ONNX model ({first})", path=path) from None
        self.inputs = {i.name for i in self.session.get_inputs()}

    def scores(self, batch: dict[str, torch.Tensor]) -> Any:
        feed = {name: batch[name].numpy() for name in INPUTS if name in self.inputs and name != "token_type_ids"}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = batch.get("token_type_ids", torch.zeros_like(batch["input_ids"])).numpy()
        return self.session.run(["scores"], feed)[0]

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.scores(batch)), batch["word_mask"]


def int8_saturates() -> bool:
    """Whether ONNX Runtime's int8 matmuls here are the x86 kernels without VNNI, which saturate on
    full-range (8-bit) weights; exports since the 7-bit weights are safe everywhere."""
    from blurbkit.runtime.capability import capability

    flags = capability().cpu.flags
    return ("avx2" in flags or "avx512f" in flags) and not {"avx512_vnni", "avx_vnni"} & set(flags)


def load_backend(model_dir: str | Path, backend: str, model: BlurbModel, threads: int | None = None) -> OnnxForward | None:
    """The forward pass `backend` names for this model directory (None: the torch model itself);
    threads: ONNX Runtime's intra-op threads (default: as many as torch uses)."""
    if backend == "torch":
        return None
    if backend not in FILES:
        raise BlurbkitError(f"unknown inference backend {backend!r} (known: {', '.join(BACKENDS)})")
    model_dir = Path(model_dir)
    check_exportable(model, model_dir)
    manifest_path = model_dir / EXPORT_DIR / MANIFEST
    int8 = " --int8" if backend == "onnx-int8" else ""
    again = f"run `blurbkit export --model {model_dir} --format onnx{int8}`"
    if not manifest_path.is_file():
        raise BlurbkitError(f"no ONNX export here; {again}", path=model_dir / EXPORT_DIR)
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
        name = manifest["files"].get(backend)
        source = manifest["source"]
        inputs = list(manifest.get("inputs") or [])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BlurbkitError(f"not an export manifest; {again}", path=manifest_path) from None
    if "word_mask" not in inputs:
        # Graphs of earlier versions took every padded word for a real one: wrong for heads that
        # read the mask (BiLSTM); one re-export is cheaper than guessing which heads are safe.
        raise BlurbkitError(f"this export predates the graph's word_mask input; {again}", path=model_dir / EXPORT_DIR)
    if name is None:
        raise BlurbkitError(f"this export has no {backend} model; {again}", path=model_dir / EXPORT_DIR)
    if backend == "onnx-int8" and not manifest.get("int8_reduce_range") and int8_saturates():
        raise BlurbkitError("this int8 export keeps full-range weights, which ONNX Runtime's int8 kernels saturate on "
                            f"a CPU without VNNI like this one (scores off by up to 0.25 in a test); {again}",
                            path=model_dir / EXPORT_DIR)
    if source != weights_digest(model_dir):
        raise BlurbkitError(f"the ONNX export was made from other weights than this model's; {again}",
                            path=model_dir / EXPORT_DIR)
    return OnnxForward(model_dir / EXPORT_DIR / name, threads=threads, name=backend)
