"""`blurbkit score`: the BLURB score from a JSON file of {dataset: score} percentages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from blurbkit.errors import BlurbkitError
from blurbkit.fileio import read_json
from blurbkit.tasks.blurb_score import blurb_score
from blurbkit.tasks.registry import get_dataset


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "score",
        help="compute the BLURB score from per-dataset test scores",
        description="Read a JSON object {dataset: score} with all 13 BLURB datasets (names such as "
        "bc5chem or titles such as BC5-chem; percentages, as in the papers) and print the average of "
        "each task type and the BLURB score (the mean of the six task-type averages).",
    )
    parser.add_argument("file", type=Path, help="JSON file {dataset: percentage}")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--partial", action="store_true",
                        help="accept a table still filling in: the complete task types' averages, the missing datasets, "
                        "no BLURB score until all 13 are given")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    scores = read_json(args.file)
    if not isinstance(scores, dict):
        raise BlurbkitError("expected a JSON object {dataset: score}", path=args.file)
    try:
        result = blurb_score(scores, partial=args.partial)
    except BlurbkitError as err:
        raise BlurbkitError(str(err), path=args.file) from None
    print(json.dumps(_rounded(result), indent=2) if args.json else _table(result))
    return 0


def _rounded(result: dict[str, Any]) -> dict[str, Any]:
    """Two decimals, as printed and as the papers report; the unrounded values under "exact"."""
    score = result["score"]
    return {
        "groups": {group: round(value, 2) for group, value in result["groups"].items()},
        "score": None if score is None else round(score, 2),
        "datasets": result["datasets"],
        "missing": result["missing"],
        "exact": {"groups": result["groups"], "score": score},
    }


def _table(result: dict[str, Any]) -> str:
    from blurbkit.tasks.blurb_score import blurb_groups

    by_group: dict[str, list[str]] = {}
    for name, value in result["datasets"].items():
        spec = get_dataset(name)
        by_group.setdefault(spec.task.blurb_group, []).append(f"{spec.title} {value:.2f}")
    groups = blurb_groups()
    width = max(len(group) for group in groups) + 2
    lines = [f"{'task type':<{width}}{'average':>8}  datasets"]
    for group, names in groups.items():
        given = by_group.get(group, [])
        if group in result["groups"]:
            lines.append(f"{group:<{width}}{result['groups'][group]:>8.2f}  {', '.join(given)}")
        else:
            absent = [get_dataset(n).title for n in names if n in result["missing"]]
            lines.append(f"{group:<{width}}{'-':>8}  {', '.join(given + [f'{t} missing' for t in absent])}")
    if result["score"] is None:
        lines.append(f"{'BLURB score':<{width}}{'-':>8}  needs all 13 datasets ({len(result['missing'])} missing)")
    else:
        lines.append(f"{'BLURB score':<{width}}{result['score']:>8.2f}")
    return "\n".join(lines)
