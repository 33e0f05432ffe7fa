"""The fine-tuning cost page (`blurbkit cost`, BioM-Transformers Table 3 setting): per dataset and
machine, each model's time per epoch, tokens/s, parameters and peak memory, with the hardware named."""

from __future__ import annotations

from typing import Any

from blurbkit.experiments import cost_report, cost_store
from blurbkit.experiments.site.context import Site, slug
from blurbkit.experiments.site.html import Td, esc, figure, table
from blurbkit.experiments.site.plots import save_figure
from blurbkit.experiments.site.studies import STUDY_PAGES, StudyPage
from blurbkit.tasks.registry import get_dataset


def hardware(machine: dict[str, Any]) -> str:
    """'AMD EPYC (cpu; avx512_bf16, ...), 2 logical CPUs, 2 torch thread(s), load average [...] at the start'."""
    cpu = str(machine.get("cpu") or "an unnamed CPU")
    details = [d for d in (machine.get("device"), ", ".join(machine.get("cpu_flags") or [])) if d]
    parts = [cpu + (f" ({'; '.join(details)})" if details else "")]
    if machine.get("cpus"):
        parts.append(f"{machine['cpus']} logical CPUs")
    parts.append(f"{machine.get('torch_threads', '?')} torch thread(s)")
    if machine.get("load_average") is not None:
        parts.append(f"load average {machine['load_average']} at the start")
    if machine.get("gpu"):
        parts.append(f"GPU {machine['gpu']}")
    return ", ".join(parts)


@STUDY_PAGES.register("cost")
class CostPage(StudyPage):
    priority = 10

    def claims(self, study: str) -> bool:
        return study == cost_store.STUDY

    def title(self, study: str) -> str:
        return "fine-tuning cost"

    def build(self, site: Site, study: str, rows: list[dict[str, Any]]) -> str:
        setting = cost_store.PAPER_SETTING
        parts = [f"<p>Each model fine-tuned by blurbkit's engine in the BioM-Transformers Table 3 setting (batch "
                 f"{setting['batch_size']}, maximum length {setting['max_length']}, {setting['epochs']} epochs), timed "
                 "on the machine named below. Time per epoch = the whole train split × the measured seconds per "
                 "example (a row timed on a seeded slice says so); tokens/s counts real subword tokens (no padding); "
                 "peak memory: the process's resident high-water mark (CPU) or peak allocated (GPU).</p>"]
        for number, section in enumerate(cost_store.cost_sections(rows)):
            parts.append(self.section_html(site, section, number))
        return "\n".join(parts)

    def section_html(self, site: Site, section: dict[str, Any], number: int) -> str:
        spec = get_dataset(section["dataset"])
        machine, rows = section["machine"], section["rows"]
        parts = [f'<h2 id="{slug(f"cost-{number}-{spec.name}")}">{esc(spec.title)} · {esc(machine.get("cpu") or "?")}, '
                 f"{esc(machine.get('torch_threads', '?'))} thread(s)</h2>"]
        header = [Td("model", cls="text"), "weights", "parameters", "time per epoch", f"{cost_store.PAPER_SETTING['epochs']} epochs",
                  "train examples/s", "tokens/s", "peak memory (MB)", Td("timed on", cls="text")]
        body = []
        for r in rows:
            timed = (f"{r['train_examples_timed']} of {r['train_split']} × {r['epochs_timed']} epoch(s)"
                     + (" (extrapolated)" if r["extrapolated"] else ""))
            memory = "—" if r.get("peak_memory_mb") is None else f"{r['peak_memory_mb']:.0f}"
            body.append([Td(r["model"], cls="text"), r["weights"], f"{r['parameters'] / 1e6:.1f} M",
                         Td(cost_report.duration(r["epoch_seconds"]), sort=round(r["epoch_seconds"], 1)),
                         cost_report.duration(r["three_epoch_seconds"]), f"{r['examples_per_second']:.1f}",
                         f"{r['tokens_per_second']:.0f}", memory, Td(timed, cls="text")])
        for model, where, seconds in cost_report.PUBLISHED:
            body.append([Td(f"{model} (published, BioM-Transformers Table 3, {where})", cls="text"), "", "",
                         cost_report.duration(seconds), cost_report.duration(3 * seconds), "", "", "", ""])
        parts.append(table(header, body))
        parts.append(f"<p><strong>Hardware:</strong> {esc(hardware(machine))}; precision "
                     f"{esc(', '.join(sorted({str(r.get('precision')) for r in rows})))} autocast."
                     + (f' <span class="muted">(Imported from {esc(machine["imported_from"])}.)</span>'
                        if machine.get("imported_from") else "") + "</p>")
        if any(str(r["weights"]).startswith("random") for r in rows):
            parts.append('<p class="muted">Random rows: a randomly initialised encoder of that architecture; its cost is '
                         "real, its scores mean nothing.</p>")
        if not cost_report.PUBLISHED:
            parts.append('<p class="muted">No published column: SPEC.md gives no BioM-Transformers Table 3 values.</p>')
        file, src = site.img(f"cost-{number}-{slug(spec.name)}.svg")
        save_figure(cost_report.cost_figure(rows, machine), file)
        parts.append(figure(src, "Minutes per epoch and training tokens/s per model on this machine.",
                            f"fine-tuning cost on {spec.title}"))
        return "\n".join(parts)
