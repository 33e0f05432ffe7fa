"""Serving trade-offs on one fine-tuned NER model (BC5-chem unless --dataset), side by side in one process:

* test entity F1 (strict and lenient, the official scorer) of the exact torch model, the ONNX fp32
  graph and the int8 dynamically quantised graph (`blurbkit export --int8`), and how many test
  words get another tag than the torch model's;
* raw-sentence speed (sentences/s, test sentences as raw text) of Predictor with each backend, of
  blurbkit.Pipeline (the test sentences joined into documents of 10, torch and onnx-int8 NER), and
  of transformers.pipeline("token-classification") on the same weights (batch 1, its default):
  every side on the same sentences, best of --rounds interleaved rounds.

    python benchmarks/serving_onnx.py --model RUN_DIR/model --mode fp32   # BLURBKIT_CPU_DTYPES=fp32 set by it
    python benchmarks/serving_onnx.py --model RUN_DIR/model --mode bf16
    python benchmarks/serving_onnx.py --report                             # the md table of both

Writes benchmarks/results/serving_onnx_<mode>.json and serving_onnx.md. The model directory is
copied, so the user's directory is not written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from blurbkit.fileio import write_json, write_text

RESULTS = Path(__file__).parent / "results"
BACKENDS = ("torch", "onnx", "onnx-int8")


def measure(model: Path, mode: str, data: str | None, speed_sentences: int, pipeline_sentences: int,
            dataset: str = "bc5chem", rounds: int = 2) -> dict:
    if mode == "fp32":
        os.environ["BLURBKIT_CPU_DTYPES"] = "fp32"  # read at every call by runtime/capability.py
    import torch
    from transformers import pipeline as hf_pipeline

    from blurbkit.data.load import load_split
    from blurbkit.errors import BlurbkitError
    from blurbkit.inference.onnx import export
    from blurbkit.inference.pipeline import Pipeline
    from blurbkit.inference.predictor import Predictor
    from blurbkit.models.encoding import encode
    from blurbkit.runtime.capability import capability
    from blurbkit.scoring import score_predictions
    from blurbkit.speed.inference import as_hf_token_model, blurbkit_word_tags, pipeline_word_tags
    from blurbkit.speed.machine import machine_info
    from blurbkit.tasks.registry import get_dataset

    try:
        spec = get_dataset(dataset)
    except BlurbkitError as err:
        sys.exit(f"--dataset: {err}")
    if "token" not in spec.task.provides:  # what Pipeline serves as NER
        sys.exit(f"--dataset {dataset}: not a token-tagging (NER) dataset")
    test = load_split(spec.name, "test", data)
    texts = [" ".join(r["tokens"]) for r in test]
    result: dict = {"model": model.name, "dataset": spec.name, "mode": mode, "native_dtypes": list(capability().cpu_dtypes),
                    "machine": machine_info(), "test_sentences": len(test), "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="blurbkit_serving_") as tmp:
        copy = Path(tmp) / "model"
        shutil.copytree(model, copy, ignore=shutil.ignore_patterns("onnx"))
        started = time.perf_counter()
        manifest = export(copy, int8=True)
        result["export_seconds"] = round(time.perf_counter() - started, 1)
        result["onnx_mb"] = {b: round((copy / "onnx" / f).stat().st_size / 2**20, 1) for b, f in manifest["files"].items()}
        result["torch_mb"] = round(sum(f.stat().st_size for f in copy.glob("*.safetensors")) / 2**20, 1)
        predictors = {b: Predictor.load(copy, backend=b) for b in BACKENDS}
        scores, tags = {}, {}
        for backend, predictor in predictors.items():
            data_ = encode(test, predictor.codec, predictor.recipe, predictor.runner.tokenizer)
            predictions = predictor.codec.collect(data_.records, data_.examples, predictor.runner.outputs(data_))
            scored = score_predictions(spec, test, predictions)
            scores[backend] = {"strict_f1": round(scored["score"], 4), "lenient_f1": round(scored["lenient"]["score"], 4),
                               "precision": round(scored["precision"], 4), "recall": round(scored["recall"], 4)}
            tags[backend] = [t for rec in predictions for t in (rec["tags"] if isinstance(rec, dict) else rec)]
        for backend in BACKENDS[1:]:
            same = sum(a == b for a, b in zip(tags["torch"], tags[backend], strict=True))
            scores[backend]["tags_identical_to_torch"] = round(same / max(1, len(tags["torch"])), 5)
        result["test"] = scores

        # Every side times the same sentences, best of `rounds` interleaved rounds (load moves all sides alike).
        sample = texts[:speed_sentences]
        documents = [" ".join(sample[i : i + 10]) for i in range(0, len(sample), 10)]
        torch_predictor = predictors["torch"]
        hf = hf_pipeline("token-classification", model=as_hf_token_model(torch_predictor.runner.model),
                         tokenizer=torch_predictor.runner.tokenizer, device=-1)
        sides = {f"Predictor {backend}": (lambda p=predictor: p.predict(sample)) for backend, predictor in predictors.items()}
        for backend in ("torch", "onnx-int8"):
            pipe = Pipeline.load(ner=[copy], backend=backend)
            sides[f"Pipeline {backend}"] = lambda p=pipe: p(documents)
        hf_out: list = []
        sides["transformers.pipeline"] = lambda: hf_out.extend(hf(sample))
        for predictor in predictors.values():  # warm-up
            predictor.predict(sample[:16])
        hf(sample[:16])
        speed: dict = {}
        for _ in range(rounds):
            hf_out.clear()
            for name, work in sides.items():
                speed.setdefault(name, []).append(timed(work, len(sample)))
        few = sample[:pipeline_sentences]  # tags compared with transformers.pipeline's on these
        ours = torch_predictor.predict(few)
        hf_out = hf_out[: len(few)]
        pairs = [(a, b) for t, x, y in zip(few, ours, hf_out, strict=True)
                 for a, b in zip(blurbkit_word_tags(t, x), pipeline_word_tags(t, y), strict=True)]
        result["pipeline_identical_tags"] = round(sum(a == b for a, b in pairs) / max(1, len(pairs)), 5)
    # sentences per second of CPU time (one thread: what an idle core gives) and of wall time, best round
    result["sentences_per_cpu_second"] = {k: round(max(c for c, _ in v), 1) for k, v in speed.items()}
    result["sentences_per_second"] = {k: round(max(w for _, w in v), 1) for k, v in speed.items()}
    for key in ("sentences_per_cpu_second", "sentences_per_second"):
        base = result[key]["transformers.pipeline"]
        result[f"ratio_{key}"] = {k: round(v / base, 2) for k, v in result[key].items()}
    result["speed_sentences"], result["pipeline_sentences"], result["rounds"] = len(sample), len(few), rounds
    result["machine"]["load_average_end"] = machine_info()["load_average"]
    return result


def timed(work, sentences: int) -> tuple[float, float]:
    """(sentences per CPU second of the process, sentences per wall second) of one call."""
    started, cpu = time.perf_counter(), time.process_time()
    work()
    return sentences / (time.process_time() - cpu), sentences / (time.perf_counter() - started)


def report() -> str:
    rows = []
    for mode in ("fp32", "bf16"):
        path = RESULTS / f"serving_onnx_{mode}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        load = r["machine"]["load_average"], r["machine"]["load_average_end"]
        rows.append(f"\n### {mode} mode ({'BLURBKIT_CPU_DTYPES=fp32: what a CPU without native bf16 runs' if mode == 'fp32' else 'native bf16'}), "
                    f"{r['machine']['cpu']} ({r['machine']['cpus']} cores), {r['threads']} thread(s), load average "
                    f"{load[0][0]:.1f} at start / {load[1][0]:.1f} at end\n")
        rows.append("| forward pass | test strict F1 | lenient F1 | words tagged as torch | size (MB) | sentences per CPU second | × transformers.pipeline | (wall: sentences/s, ×) |")
        rows.append("|---|---|---|---|---|---|---|---|")
        sps, ratio = r["sentences_per_cpu_second"], r["ratio_sentences_per_cpu_second"]
        wall, wall_ratio = r["sentences_per_second"], r["ratio_sentences_per_second"]
        for backend in BACKENDS:
            t = r["test"][backend]
            size = r["torch_mb"] if backend == "torch" else r["onnx_mb"][backend]
            same = f"{100 * t['tags_identical_to_torch']:.3f} %" if backend != "torch" else "—"
            rows.append(f"| Predictor {backend} | {100 * t['strict_f1']:.2f} | {100 * t['lenient_f1']:.2f} | {same} | {size} | "
                        f"{sps[f'Predictor {backend}']} | **{ratio[f'Predictor {backend}']}×** | "
                        f"{wall[f'Predictor {backend}']}, {wall_ratio[f'Predictor {backend}']}× |")
        for name in ("Pipeline torch", "Pipeline onnx-int8", "transformers.pipeline"):
            rows.append(f"| {name} | | | | | {sps[name]} | **{ratio[name]}×** | {wall[name]}, {wall_ratio[name]}× |")
        if "rounds" in r:  # every side on the same sentences
            timing = (f"speed on the first {r['speed_sentences']} as raw text, every side on the same sentences, best of "
                      f"{r['rounds']} interleaved rounds (Pipeline: documents of 10 sentences; transformers.pipeline: batch 1); "
                      f"its tags and the torch Predictor's agree on {100 * r['pipeline_identical_tags']:.2f} % of words "
                      f"of the first {r['pipeline_sentences']}")
        else:  # files measured before: transformers.pipeline on a subset, Pipeline one round
            timing = (f"speed on the first {r['speed_sentences']} as raw text (Predictor: best of 2 interleaved rounds; "
                      f"Pipeline: documents of 10 sentences, one round), transformers.pipeline on the first "
                      f"{r['pipeline_sentences']} (batch 1); its tags and the torch Predictor's agree on "
                      f"{100 * r['pipeline_identical_tags']:.2f} % of words")
        rows.append(f"\nTest set: {r['test_sentences']} sentences; {timing}. Export took {r['export_seconds']} s.")
    return "# ONNX / int8 serving trade-off (BC5-chem)\n" + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a fine-tuned NER model directory (RUN_DIR/model)")
    parser.add_argument("--dataset", default="bc5chem", help="its NER dataset (the test set scored and timed)")
    parser.add_argument("--out", type=Path, help="the JSON (default results/serving_onnx_MODE.json for bc5chem, "
                                                 "serving_onnx_DATASET_MODE.json otherwise)")
    parser.add_argument("--mode", choices=("fp32", "bf16"))
    parser.add_argument("--data", default=None)
    parser.add_argument("--speed-sentences", type=int, default=2000)
    parser.add_argument("--pipeline-sentences", type=int, default=500,
                        help="of the timed sentences, how many to compare tags with transformers.pipeline on")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per side, interleaved (best kept)")
    parser.add_argument("--report", action="store_true",
                        help="write serving_onnx.md from the BC5-chem JSON files (serving_onnx_fp32/bf16.json)")
    args = parser.parse_args()
    if args.report:
        write_text(RESULTS / "serving_onnx.md", report())
        return
    if args.model is None or args.mode is None:
        sys.exit("--model and --mode are needed (or --report)")
    result = measure(args.model, args.mode, args.data, args.speed_sentences, args.pipeline_sentences, args.dataset,
                     args.rounds)
    name = f"serving_onnx_{args.mode}.json" if args.dataset == "bc5chem" else f"serving_onnx_{args.dataset}_{args.mode}.json"
    write_json(args.out or RESULTS / name, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
