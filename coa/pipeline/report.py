"""Table 1 of a pipeline run, written as table.md, table.csv, table.png and a W&B table."""

from __future__ import annotations

from pathlib import Path

from coa.data.atomic import atomic_open
from coa.pipeline.chart import plot_table
from coa.pipeline.config import PipelineConfig
from coa.pipeline.row_eval import eval_dir, read_metrics
from coa.pipeline.settings_note import stage_settings_note
from coa.pipeline.spec import StageNode, parse_row, row_label
from coa.pipeline.table import TableRow, columns, csv_text, markdown, records, table_row

TABLE_FILES = ("table.md", "table.csv", "table.png")


def collect_rows(config: PipelineConfig, out: Path) -> list[TableRow]:
    """Every row's evaluated metrics, in the config's row order."""
    groups = list(config.table.groups)
    rows = []
    for row in config.rows:
        node = StageNode(parse_row(row))
        rows.append(table_row(row_label(node.path), node.key, read_metrics(eval_dir(out, node)), groups))
    return rows


def write_table(config: PipelineConfig, out: Path, rows: list[TableRow]) -> str:
    """Writes table.md, table.csv and table.png into `out`; returns the markdown (its last line: the stage settings
    the run changed, `stage_settings_note`)."""
    headers, groups = config.table.groups, list(config.table.groups)
    note = stage_settings_note(config)
    text = markdown(rows, headers) + (f"\n{note}\n" if note else "")
    with atomic_open(out / "table.md") as f:
        f.write(text)
    with atomic_open(out / "table.csv") as f:
        f.write(csv_text(rows, groups))
    plot_table(rows, headers, out / "table.png")
    return text


def log_wandb_table(config: PipelineConfig, out: Path, rows: list[TableRow], group: str) -> None:
    """The table (and its chart) as one W&B run, `table1`, in the pipeline's group."""
    import wandb

    groups = list(config.table.groups)
    # create_new: a run some caller left open is neither reused nor finished
    run = wandb.init(
        project=config.wandb.project, group=group, name="table1", job_type="table", dir=str(out), reinit="create_new",
        notes=stage_settings_note(config) or None,
    )
    try:
        run.log({
            "pipeline/table1": wandb.Table(columns=columns(groups), data=records(rows, groups)),
            "pipeline/table1_chart": wandb.Image(str(out / "table.png")),
        })
    finally:
        run.finish()
