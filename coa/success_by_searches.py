"""Success rate against the number of searches a question used: the numbers and a PNG bar chart."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the evaluation imports this module; Prediction is only a type here
    from coa.evaluation import Prediction

PLOT_FILE = "success_by_searches.png"


def success_by_searches(predictions: list[Prediction], mode: str = "search") -> dict[int, dict[str, float]]:
    """`{searches: {"n", "em"}}` over the `mode` predictions, by how many searches each used, ascending.

    >>> from coa.evaluation import Prediction
    >>> ps = [Prediction("q", "search", "?", ["a"], "a", em, em, k, [], "") for em, k in ((1.0, 1), (0.0, 1), (1.0, 2))]
    >>> success_by_searches(ps)
    {1: {'n': 2, 'em': 0.5}, 2: {'n': 1, 'em': 1.0}}
    """
    ems: dict[int, list[float]] = defaultdict(list)
    for p in predictions:
        if p.mode == mode:
            ems[p.searches].append(p.em)
    return {k: {"n": len(v), "em": sum(v) / len(v)} for k, v in sorted(ems.items())}


def plot_success_by_searches(stats: dict[int, dict[str, float]], path: str | Path, title: str = "") -> Path:
    """A bar per search count: EM of the questions that used that many searches, their count above the bar.

    Drawn with matplotlib's Agg canvas (no display, no pyplot state); returns the PNG's path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = list(stats)
    bars = ax.bar(xs, [stats[k]["em"] for k in xs], color="tab:blue")
    for bar, k in zip(bars, xs):
        ax.annotate(f"n={stats[k]['n']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(xs)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("searches used")
    ax.set_ylabel("EM")
    ax.set_title(title or "Success rate by number of searches")
    if not xs:
        ax.text(0.5, 0.5, "no predictions", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
