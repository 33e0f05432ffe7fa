"""What every page builder of the site shares: the rows, the leaderboard, names, where pages go."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blurbkit.experiments.compare import GoldCache, resolve_run_dir, run_info
from blurbkit.experiments.leaderboard import Entry
from blurbkit.experiments.site.html import page
from blurbkit.experiments.site.plots import Curve


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


@dataclass
class Site:
    out: Path
    rows: list[dict[str, Any]]
    entries: list[Entry]
    names: dict[str, str]  # store model label -> display name
    generated: str
    gold: GoldCache
    replicates: int
    nav: list[tuple[str, str]] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)  # file -> title
    _runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- names -----------------------------------------------------------------------------------
    def model_page(self, model: str) -> str:
        return f"model-{slug(self.names[model])}-{hashlib.sha1(model.encode()).hexdigest()[:6]}.html"

    @staticmethod
    def dataset_page(dataset: str) -> str:
        return f"dataset-{slug(dataset)}.html"

    @staticmethod
    def study_page(study: str) -> str:
        return f"study-{slug(study)}.html"

    def entry_label(self, entry: Entry) -> str:
        return f"{self.names[entry.model]} · {entry.protocol}"

    def entry_anchor(self, entry: Entry) -> str:
        return slug(f"{entry.study}-{entry.budget}")

    # -- output ----------------------------------------------------------------------------------
    def img(self, name: str) -> tuple[Path, str]:
        """(file to write, src for the page) of a picture."""
        return self.out / "img" / name, f"img/{name}"

    def write(self, name: str, title: str, body: str, sort: bool = False) -> None:
        (self.out / name).write_text(page(title, body, self.nav, self.generated, sort=sort), encoding="utf-8")
        self.pages[name] = title

    # -- run directories -------------------------------------------------------------------------
    def run(self, row: dict[str, Any]) -> dict[str, Any]:
        """What the run directory of a stored run adds: run.json, the dev curve; {} without it."""
        key = f"{row.get('store')}#{row['id']}"
        if key not in self._runs:
            run_dir = resolve_run_dir(row)
            info = run_info(run_dir)
            if run_dir is not None:
                info["_dir"] = run_dir
                info["_epochs"] = read_epochs(run_dir / "epochs.jsonl")
                try:
                    info["_metrics"] = json.loads((run_dir / "metrics.json").read_text("utf-8"))
                except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                    info["_metrics"] = {}
            self._runs[key] = info
        return self._runs[key]

    def curve(self, row: dict[str, Any], label: str) -> Curve | None:
        epochs = self.run(row).get("_epochs") or []
        if not epochs:
            return None
        return Curve(label, [e[0] for e in epochs], [e[1] for e in epochs])


def read_epochs(path: Path) -> list[tuple[int, float]]:
    """(epoch, dev score %) per line of epochs.jsonl; lines that do not read are skipped."""
    out = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    for n, line in enumerate(lines, start=1):
        try:
            item = json.loads(line)
            out.append((int(item.get("epoch", n)), 100 * float(item["score"])))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
    return out
