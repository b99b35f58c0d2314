"""Table 1 from `coa eval` metrics: EM / F1 / lenient cells per question kind, markdown and CSV; the bar chart."""

import csv
import io

from coa.pipeline.chart import plot_table
from coa.pipeline.table import columns, csv_text, markdown, table_row

HEADERS = {"all": "all", "needs_search": "needs search", "entity=unseen": "unseen entities", "kind=comparison": "comparisons"}


def entry(n, em, f1, lenient=None, searches=1.0, errors=0.0):
    return {"n": n, "em": em, "f1": f1, "lenient": lenient, "searches": searches, "format_error_rate": errors}


METRICS = {
    "search/all": entry(10, 0.5, 0.6, 0.7, searches=1.5, errors=0.1),
    "search/needs_search": entry(8, 0.5, 0.625, 0.75),
    "search/entity=unseen": entry(4, 0.25, 0.3, 0.5),
    "closed_book/all": entry(10, 0.2, 0.2),
    "closed_book/needs_search": entry(8, 0.0, 0.1),
}


def test_a_row_reads_search_scores_per_group_and_closed_book_on_questions_that_need_search():
    row = table_row("SFT1&2", "sft1-sft2", METRICS, list(HEADERS))
    assert row.scores["needs_search"].em == 0.5 and row.scores["needs_search"].lenient == 0.75
    assert "kind=comparison" not in row.scores  # these questions have none
    assert (row.closed_book_em, row.searches, row.format_error_rate) == (0.0, 1.5, 0.1)


def test_markdown_cells_are_em_f1_lenient_and_missing_groups_a_dash():
    rows = [table_row("SFT2", "sft2", METRICS, list(HEADERS)),
            table_row("SFT1&2", "sft1-sft2", {**METRICS, "search/all": entry(10, 0.6, 0.7)}, list(HEADERS))]
    rows.append(table_row("base", "base", {**METRICS, "naive_rag/needs_search": entry(8, 0.375, 0.4)}, list(HEADERS)))
    lines = markdown(rows, HEADERS).splitlines()
    assert lines[0] == ("| variant | stages | all (n=10) | needs search (n=8) | unseen entities (n=4) | comparisons (n=0) "
                        "| closed-book EM | naive RAG EM | searches/q | format errors |")
    assert lines[2] == ("| SFT2 | sft2 | 0.500 / 0.600 / 0.700 | 0.500 / 0.625 / 0.750 | 0.250 / 0.300 / 0.500 | - | 0.000 "
                        "| - | 1.50 | 10.0% |")
    assert lines[4].endswith("| 0.000 | 0.375 | 1.50 | 10.0% |")  # naive RAG where the evaluation ran it
    assert lines[3].startswith("| SFT1&2 | sft1-sft2 | 0.600 / 0.700 | ")  # no lenient score: EM / F1 only


def test_csv_has_one_column_per_group_and_score():
    rows = [table_row("SFT2", "sft2", METRICS, list(HEADERS))]
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows, list(HEADERS)))))
    assert list(parsed[0]) == columns(list(HEADERS))
    assert parsed[0]["needs_search/f1"] == "0.625" and parsed[0]["kind=comparison/em"] == "" and parsed[0]["all/n"] == "10"


def test_the_chart_is_a_png(tmp_path):
    rows = [table_row("SFT2", "sft2", METRICS, list(HEADERS)), table_row("SFT1&2", "sft1-sft2", METRICS, list(HEADERS))]
    path = plot_table(rows, HEADERS, tmp_path / "table.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
