"""Table 1: one row per variant (stage combination), one column per question kind; EM / F1 / lenient cells."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass


@dataclass(frozen=True)
class Score:
    """A variant's scores on one question kind, with the search tool."""

    n: int
    em: float
    f1: float
    lenient: float | None = None


@dataclass(frozen=True)
class TableRow:
    """One variant of Table 1.

    Args:
        label: the paper's name, e.g. "SFT1&2+RL2".
        path: its stage path, e.g. "sft1-sft2-rl2".
        scores: per `coa eval` group (e.g. "needs_search"), search mode; groups the questions lack are absent.
        closed_book_em: EM without the tool on the questions that need search (all questions when none is marked).
        naive_rag_em: EM of retrieve-once-then-answer (the question as the query, no action) on the same questions;
            None when the evaluation's modes leave naive RAG out.
        searches: searches per question, search mode, all questions.
        format_error_rate: share of search-mode outputs that break the action format.
    """

    label: str
    path: str
    scores: dict[str, Score]
    closed_book_em: float | None
    searches: float | None
    format_error_rate: float | None
    naive_rag_em: float | None = None


def table_row(label: str, path: str, metrics: dict[str, dict], groups: list[str]) -> TableRow:
    """A TableRow from `coa eval`'s metrics (`{"<mode>/<group>": {"n", "em", "f1", "lenient", ...}}`)."""
    scores = {
        g: Score(int(m["n"]), float(m["em"]), float(m["f1"]), m.get("lenient"))
        for g in groups if (m := metrics.get(f"search/{g}")) is not None
    }
    closed = metrics.get("closed_book/needs_search") or metrics.get("closed_book/all")
    naive = metrics.get("naive_rag/needs_search") or metrics.get("naive_rag/all")
    overall = metrics.get("search/all")
    return TableRow(
        label, path, scores,
        closed_book_em=closed["em"] if closed else None,
        searches=overall["searches"] if overall else None,
        format_error_rate=overall["format_error_rate"] if overall else None,
        naive_rag_em=naive["em"] if naive else None,
    )


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if value is None else fmt.format(value)


def _cell(score: Score | None) -> str:
    if score is None:
        return "-"
    parts = [score.em, score.f1] + ([score.lenient] if score.lenient is not None else [])
    return " / ".join(f"{v:.3f}" for v in parts)


def _sizes(rows: list[TableRow], group: str) -> int | None:
    return next((r.scores[group].n for r in rows if group in r.scores), None)


def markdown(rows: list[TableRow], headers: dict[str, str]) -> str:
    """The table as markdown; `headers` maps each group to its column name, in column order.

    Cells: EM / F1 (/ lenient where the evaluation scored it), with the search tool.
    """
    names = [f"{h} (n={_sizes(rows, g) or 0})" for g, h in headers.items()]
    lines = [
        "| variant | stages | " + " | ".join(names) + " | closed-book EM | naive RAG EM | searches/q | format errors |",
        "|---|---|" + "---:|" * (len(names) + 4),
    ]
    for r in rows:
        cells = [_cell(r.scores.get(g)) for g in headers]
        lines.append(
            f"| {r.label} | {r.path} | " + " | ".join(cells)
            + f" | {_num(r.closed_book_em)} | {_num(r.naive_rag_em)} | {_num(r.searches, '{:.2f}')} | {_num(r.format_error_rate, '{:.1%}')} |"
        )
    return "\n".join(lines) + "\n\ncells: EM / F1 / lenient (AutoCoA's rule, where scored), with the search tool; " \
        "closed-book and naive-RAG (retrieve once with the question, then answer) EM on the questions that need search; " \
        "variant 'base': the base model before any agent training (a tiny one after its reading pretraining), prompted as an agent\n"


def columns(groups: list[str]) -> list[str]:
    """The CSV's (and the W&B table's) columns."""
    per_group = [f"{g}/{s}" for g in groups for s in ("em", "f1", "lenient", "n")]
    return ["variant", "stages", *per_group, "closed_book/em", "naive_rag/em", "searches", "format_error_rate"]


def records(rows: list[TableRow], groups: list[str]) -> list[list]:
    """One list per row, in `columns(groups)` order; None where a value is missing."""
    out = []
    for r in rows:
        values: list = [r.label, r.path]
        for g in groups:
            s = r.scores.get(g)
            values += [s.em, s.f1, s.lenient, s.n] if s else [None] * 4
        out.append(values + [r.closed_book_em, r.naive_rag_em, r.searches, r.format_error_rate])
    return out


def csv_text(rows: list[TableRow], groups: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns(groups))
    for values in records(rows, groups):
        writer.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in values])
    return buffer.getvalue()
