"""Cost of the full BLURB protocol (`blurbkit benchmark --protocol full --plan`) on this machine, for
the default MiniLM and for a BERT-base-sized encoder (random weights: only its speed matters here).
Throughput comes from a short calibration run per dataset (64 train examples, two epochs: the second is the steady rate).

    BLURBKIT_SHARED_DATA=../shared/data PYTHONPATH=src python benchmarks/sweep_plan.py OUT_DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from blurbkit.fileio import write_text


def bert_base(out: Path) -> Path:
    from transformers import BertConfig, BertModel

    from blurbkit.models.loading import default_model_dir

    out.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (default_model_dir() / name).is_file():
            shutil.copy(default_model_dir() / name, out / name)
    BertModel(BertConfig(), add_pooling_layer=False).save_pretrained(out)  # 768 hidden, 12 layers, 3072 FFN
    return out


def main(work: Path, names: list[str]) -> None:
    models = {"minilm": lambda: None, "bert-base": lambda: bert_base(work / "bert-base")}
    for name in names:
        model = models[name]()
        argv = [sys.executable, "-m", "blurbkit", "benchmark", "--protocol", "full", "--plan",
                "--runs-dir", str(work / f"runs-{name}"), "--data", os.environ.get("BLURBKIT_SHARED_DATA", "../shared/data"), *(["--model", str(model)] if model else [])]
        plan = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        write_text(work / f"plan-{name}.md", plan)
        print(f"## {name}\n\n{plan}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="where the random BERT-base, the plans' runs folders and plan-*.md go")
    parser.add_argument("--models", default="minilm,bert-base", help="which plans, comma-separated: minilm, bert-base")
    args = parser.parse_args()
    names = args.models.split(",")
    if unknown := sorted(set(names) - {"minilm", "bert-base"}):
        parser.error(f"--models: unknown {', '.join(unknown)} (choose from minilm, bert-base)")
    main(args.out_dir, names)
