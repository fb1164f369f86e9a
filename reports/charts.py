"""Charts as inline SVG strings (matplotlib, Agg backend): no files, no network, no fonts fetched.

SVG ids and the hash salt are fixed so the same data gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

matplotlib.rcParams.update(
    {
        "svg.hashsalt": "fraudwatch",
        "svg.fonttype": "none",  # text stays text: small and searchable
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)

REF = "#8c959f"
CUR = "#0969da"
ALT = "#cf222e"


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def distribution(
    labels: Sequence[str], reference: Sequence[float], current: Sequence[float], title: str
) -> str:
    """Reference vs current share per bin."""
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    x = list(range(len(labels)))
    width = 0.4
    ax.bar([i - width / 2 for i in x], reference, width, label="reference", color=REF)
    ax.bar([i + width / 2 for i in x], current, width, label="current", color=CUR)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("share")
    ax.set_title(title, fontsize=9, loc="left")
    ax.legend(frameon=False, fontsize=7)
    return _svg(fig)


def series(
    days: Sequence[str], lines: Mapping[str, Sequence[float | None]], title: str, ylabel: str
) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    colours = [CUR, ALT, REF, "#1a7f37"]
    for n, (name, values) in enumerate(lines.items()):
        ys = [float("nan") if v is None else v for v in values]
        ax.plot(range(len(days)), ys, marker="o", markersize=2.5, label=name, color=colours[n % 4])
    step = max(1, len(days) // 10)
    ax.set_xticks(range(0, len(days), step))
    ax.set_xticklabels(list(days)[::step], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9, loc="left")
    if len(lines) > 1:
        ax.legend(frameon=False, fontsize=7)
    return _svg(fig)


def pr_curves(curves: dict[str, Sequence[tuple[float, float]]], title: str) -> str:
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    colours = [CUR, ALT, REF]
    for n, (name, pts) in enumerate(curves.items()):
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, color=colours[n % 3])
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9, loc="left")
    ax.legend(frameon=False, fontsize=7)
    return _svg(fig)


def bars(labels: Sequence[str], values: Sequence[float], title: str) -> str:
    """Horizontal bars, largest on top (e.g. feature importance)."""
    fig, ax = plt.subplots(figsize=(6.4, max(1.6, 0.22 * len(labels) + 0.6)))
    ax.barh(list(range(len(labels)))[::-1], values, color=CUR)
    ax.set_yticks(list(range(len(labels)))[::-1])
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_title(title, fontsize=9, loc="left")
    return _svg(fig)
