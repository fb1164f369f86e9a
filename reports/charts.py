"""The model card's importance chart as inline SVG (matplotlib, Agg backend): no files, no
network, no fonts fetched. Every other chart is plain SVG text (:mod:`reports.svg`).

SVG ids and the hash salt are fixed so the same data gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

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


def bars(labels: Sequence[str], values: Sequence[float], title: str) -> str:
    """Horizontal bars, largest on top (e.g. feature importance)."""
    fig, ax = plt.subplots(figsize=(6.4, max(1.6, 0.22 * len(labels) + 0.6)))
    ax.barh(list(range(len(labels)))[::-1], values, color=CUR)
    ax.set_yticks(list(range(len(labels)))[::-1])
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_title(title, fontsize=9, loc="left")
    return _svg(fig)
