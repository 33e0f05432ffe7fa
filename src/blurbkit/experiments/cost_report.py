"""`blurbkit cost`'s table and plot (minutes per epoch, tokens/s, per model), from measured or stored
rows; no torch here, so the report site draws them without the training code (cost_table.py measures)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blurbkit.fileio import atomic_write, write_csv
from blurbkit.tasks.registry import get_dataset

# BioM-Transformers Table 3, if its values are ever added to SPEC.md: (model, hardware, seconds per epoch).
# SPEC.md §7-8 give none, so the table prints that instead of numbers.
PUBLISHED: list[tuple[str, str, float]] = []


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def cost_table(dataset: str, rows: Sequence[dict[str, Any]], machine: dict[str, Any]) -> str:
    title = get_dataset(dataset).title
    lines = ["| model | weights | parameters | time per epoch | 3 epochs | train examples/s | tokens/s | peak memory (MB) | timed on |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        timed = f"{r['train_examples_timed']} of {r['train_split']} × {r['epochs_timed']} ep" + (" (extrapolated)" if r["extrapolated"] else "")
        lines.append(f"| {r['model']} | {r['weights']} | {r['parameters'] / 1e6:.1f} M | {duration(r['epoch_seconds'])} | "
                     f"{duration(r['three_epoch_seconds'])} | {r['examples_per_second']:.1f} | {r['tokens_per_second']:.0f} | "
                     f"{r['peak_memory_mb']:.0f} | {timed} |")
    for model, hardware, seconds in PUBLISHED:
        lines.append(f"| *{model}, published (BioM-Transformers Table 3, {hardware})* | | | {duration(seconds)} | "
                     f"{duration(3 * seconds)} | | | | |")
    threads = machine.get("torch_threads")
    lines += [
        "",
        f"Fine-tuning cost on {title} in the BioM-Transformers Table 3 setting (3 epochs, batch 32, max length 128), "
        f"measured by blurbkit's engine in {rows[0]['precision'] if rows else '?'} autocast.",
        f"Hardware: {machine.get('cpu')} ({machine.get('device')}), {machine.get('cpus')} logical CPUs, {threads} torch "
        f"thread(s); load average {machine.get('load_average')} at the start (a shared machine).",
        "Time per epoch = the whole train split × the measured seconds per example; '(extrapolated)' rows timed a "
        "seeded slice. tokens/s counts real subword tokens (no padding); peak memory is the process's resident "
        "high-water mark during the run (CPU) or peak allocated (GPU).",
    ]
    if any(r["weights"].startswith("random") for r in rows):
        lines.append("Random rows: a randomly initialised encoder of that architecture (no pretrained weights of that "
                     "size are local); their cost is real, their scores mean nothing.")
    if not PUBLISHED:
        lines.append("Published column: SPEC.md §7-8 give no BioM-Transformers Table 3 values, so none are printed here.")
    return "\n".join(lines)


def write_cost_report(out_dir: Path, name: str, table: str, rows: Sequence[dict[str, Any]],
                      machine: dict[str, Any]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.md", out_dir / f"{name}.csv", out_dir / f"{name}.png"]
    with atomic_write(paths[0]) as handle:
        handle.write(table + "\n")
    fields = list(rows[0]) if rows else []
    write_csv(paths[1], [[*fields, "cpu", "torch_threads"]] + [
        [*(round(v, 3) if isinstance(v := r.get(k, ""), float) else v for k in fields), machine.get("cpu"),
         machine.get("torch_threads")]
        for r in rows])
    plot_cost(paths[2], rows, machine)
    return paths


def plot_cost(path: Path, rows: Sequence[dict[str, Any]], machine: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    fig = cost_figure(rows, machine)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


def cost_figure(rows: Sequence[dict[str, Any]], machine: dict[str, Any]) -> Any:
    """Minutes per epoch and training tokens/s per model (a figure the caller saves and closes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    names = [r["model"] for r in rows]
    left.bar(names, [r["epoch_seconds"] / 60 for r in rows], color="tab:blue")
    left.set_ylabel("minutes per epoch")
    right.bar(names, [r["tokens_per_second"] for r in rows], color="tab:green")
    right.set_ylabel("tokens/s (training)")
    for ax in (left, right):
        ax.tick_params(axis="x", labelsize=8, rotation=15)
    fig.suptitle(f"fine-tuning cost, batch 32, length 128 — {machine.get('cpu')}, {machine.get('torch_threads')} thread(s)",
                 fontsize=9)
    fig.tight_layout()
    return fig
