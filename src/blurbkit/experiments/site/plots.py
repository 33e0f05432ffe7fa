"""The site's pictures as SVG (matplotlib, text as paths: no fonts fetched, the same bytes each build)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REFERENCE_STYLE = {"BERT-uncased": ("tab:gray", "|"), "BioBERT": ("tab:green", "|"), "PubMedBERT": ("tab:orange", "|")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "blurbkit", "svg.fonttype": "none", "font.size": 9})
    return plt


def _save(fig, path: Path) -> None:
    buffer = io.StringIO()
    # Margins are set when the figure is made: no tight bbox or tight_layout, each of which draws the
    # figure once more (a site has dozens of pictures).
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def save_figure(fig, path: Path) -> None:
    """A figure drawn elsewhere (a study's own plotting) as the site's SVG, then closed."""
    plt = _pyplot()  # the site's SVG settings (fixed hash salt, no date) apply at save time
    _save(fig, path)
    plt.close(fig)


@dataclass
class Strip:
    label: str
    scores: list[float]
    failed: int = 0  # runs stored as failed (no score): drawn as a count at the row's left
    marks: dict[str, float] = field(default_factory=dict)  # reference name -> published value


def strip_plot(path: Path, strips: Sequence[Strip], title: str, xlabel: str = "test score (%)", dots: str = "seed") -> None:
    """One row per strip: every seed (or fold: `dots`) a dot (jittered vertically), the mean a bar, published values ticks."""
    plt = _pyplot()
    rows = max(1, len(strips))
    left = 0.35 + 0.068 * max((len(s.label) for s in strips), default=4)  # inches for the row labels
    height = 0.3 * rows + 1.45  # title 0.35 in, x label and legend 1.1 in
    width = left + 5.2
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, 1.1 / height, 5.0 / width, 0.3 * rows / height))
    seen: set[str] = set()
    for y, strip in enumerate(reversed(strips)):
        n = len(strip.scores)
        offsets = [0.0] if n == 1 else [0.25 * (i / (n - 1) - 0.5) for i in range(n)]
        ax.scatter(strip.scores, [y + o for o in offsets], s=16, color="tab:blue", alpha=0.75, zorder=3,
                   label=dots if dots not in seen else None)
        seen.add(dots)
        if n:
            mean = sum(strip.scores) / n
            ax.plot([mean, mean], [y - 0.3, y + 0.3], color="tab:blue", linewidth=2, zorder=2)
        for name, value in strip.marks.items():
            color, marker = REFERENCE_STYLE.get(name, ("tab:purple", "|"))
            ax.scatter([value], [y], marker=marker, s=160, color=color, zorder=2, label=name if name not in seen else None)
            seen.add(name)
        if strip.failed:
            ax.annotate(f"{strip.failed} failed", (0, y), xycoords=("axes fraction", "data"), xytext=(3, 0),
                        textcoords="offset points", color="tab:red", va="center", fontsize=8)
    ax.set_yticks(range(len(strips)), [s.label for s in reversed(strips)])
    ax.set_ylim(-0.6, len(strips) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    if seen:
        fig.legend(loc="lower center", bbox_to_anchor=(0.5, 0.02), ncol=4, frameon=False, fontsize=8)
    _save(fig, path)
    plt.close(fig)


@dataclass
class Curve:
    label: str
    epochs: list[int]
    scores: list[float]


def learning_curves(path: Path, panels: dict[str, list[Curve]], title: str) -> None:
    """Dev score against epoch, one panel per dataset (or run group), one line per run."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    names = list(panels)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    width, height = 3.1 * cols, 2.3 * rows + 0.4
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 0.55 / height,
                        wspace=0.45, hspace=0.65)
    for ax, name in zip(axes.flat, names, strict=False):
        for curve in panels[name]:
            ax.plot(curve.epochs, curve.scores, marker="o", markersize=3, linewidth=1.2, label=curve.label)
        ax.set_title(name, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("dev score (%)")
        ax.grid(alpha=0.3)
        if 1 < len(panels[name]) <= 6:
            ax.legend(fontsize=7, frameon=False)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(title)
    _save(fig, path)
    plt.close(fig)


def interval_plot(path: Path, labels: Sequence[str], values: Sequence[float | None],
                  intervals: Sequence[tuple[float, float] | None], title: str, xlabel: str) -> None:
    """A forest plot: each row's difference with its 95% interval; the zero line marks no difference."""
    plt = _pyplot()
    left = 0.35 + 0.068 * max((len(label) for label in labels), default=4)
    height, width = 0.3 * max(1, len(labels)) + 1.0, left + 5.2
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, 0.6 / height, 5.0 / width, 0.3 * max(1, len(labels)) / height))
    for y, (value, ci) in enumerate(zip(reversed(values), reversed(intervals), strict=True)):
        if value is None:
            continue
        if ci is not None:
            excludes = ci[0] > 0 or ci[1] < 0
            ax.plot(ci, [y, y], color="tab:red" if excludes else "tab:blue", linewidth=2)
        ax.scatter([value], [y], color="black", s=14, zorder=3)
    ax.axvline(0, color="gray", linewidth=1)
    ax.set_yticks(range(len(labels)), list(reversed(labels)))
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)
    plt.close(fig)
