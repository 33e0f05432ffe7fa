"""The architecture as code: the import contracts in pyproject.toml hold, and no package outside
tasks/ branches on a task type's name (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "blurbkit"


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


BRANCH = re.compile(r"task_type\s*(==|!=|\bin\b)|is_token_task|task_type\s*not\s+in")


def test_only_task_types_know_task_type_names():
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "tasks"):
            continue
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if BRANCH.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "branch on a task type outside tasks/ (ask spec.task instead):\n" + "\n".join(offenders)


PART_BRANCH = re.compile(r"""(objective|\.reader)\s*(==|!=)\s*["']|(objective|\.reader)\s+(not\s+)?in\s*[(\[{]\s*["']""")


def test_no_branch_on_an_objective_or_reader_name_outside_its_registry():
    """An objective or a raw format is added as one module (docs/ARCHITECTURE.md): what the pretraining
    study or the data preparation needs from it is asked of the part, never decided by its name."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "pretrain" / "objectives") or path.is_relative_to(SRC / "data" / "readers"):
            continue
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if PART_BRANCH.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "branch on a part's name outside its registry:\n" + "\n".join(offenders)


def test_reading_a_results_store_needs_no_torch():
    """The report site and `blurbkit compare` read stores and run directories: importing them must not
    import torch or the training loop (they start in a second, and run where no torch is installed)."""
    code = ("import sys, blurbkit.experiments.site.build, blurbkit.experiments.compare; "
            "print(sorted(m for m in ('torch', 'transformers', 'blurbkit.models', 'blurbkit.train.engine') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout
