"""Table 1 as a bar chart: EM with the search tool per question kind, one bar per variant."""

from __future__ import annotations

from pathlib import Path

from coa.pipeline.table import TableRow


def plot_table(rows: list[TableRow], headers: dict[str, str], path: Path) -> Path:
    """Writes a PNG: groups of bars (one group per question kind, one bar per variant); headless (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(headers)
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) + 0.3 * len(rows)), 4.0))
    try:
        for i, row in enumerate(rows):
            xs = [g + (i - (len(rows) - 1) / 2) * width for g in range(len(groups))]
            ems = [row.scores[g].em if g in row.scores else 0.0 for g in groups]
            bars = ax.bar(xs, ems, width, label=row.label)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
        ax.set_xticks(range(len(groups)), [headers[g] for g in groups])
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("EM (with search)")
        ax.set_title("Table 1: each stage combination")
        ax.legend(fontsize=7, ncol=2, loc="upper right")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path
