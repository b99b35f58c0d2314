"""Table 1's files from a run's evaluations, and the W&B table in the pipeline's group."""

import json
import time
from pathlib import Path

from coa.pipeline.report import TABLE_FILES, collect_rows, log_wandb_table, write_table
from coa.pipeline.settings_note import stage_settings_note

from tiny_pipeline import tiny_settings, to_config


def fake_run(tmp_path, rows):
    """A run folder with `coa eval` metrics for each row, as the pipeline leaves them."""
    for i, row in enumerate(rows):
        folder = tmp_path / "eval" / row
        folder.mkdir(parents=True)
        metrics = {f"search/{g}": {"n": 4, "em": i / 4, "f1": i / 4, "lenient": None, "searches": 1.0, "format_error_rate": 0.0}
                   for g in ("all", "needs_search")}
        (folder / "metrics.json").write_text(json.dumps({"model": "m", "metrics": metrics}))
    return to_config({**tiny_settings(tmp_path, rows), "wandb": {"enabled": True, "project": "coa-test"}})


def flushed_record(run: Path, expected: list[bytes], timeout_s: float = 30.0) -> bytes:
    """The run's .wandb file once it holds every expected string, or as it is after `timeout_s`: wandb's service
    process can still be writing it when `finish()` returns (CI once read only the file's header)."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = next(run.glob("*.wandb")).read_bytes()
        if all(e in record for e in expected) or time.monotonic() > deadline:
            return record
        time.sleep(0.1)


def test_the_table_files_follow_the_rows_order(tmp_path):
    config = fake_run(tmp_path, ["sft1-sft2", "sft2"])
    rows = collect_rows(config, tmp_path)
    assert [(r.label, r.scores["all"].em) for r in rows] == [("SFT1&2", 0.0), ("SFT2", 0.25)]
    text = write_table(config, tmp_path, rows)
    assert all((tmp_path / name).is_file() for name in TABLE_FILES)
    assert text == (tmp_path / "table.md").read_text() and "| SFT2 | sft2 | 0.250 / 0.250 |" in text
    assert text.splitlines()[-1] == stage_settings_note(config) and "sft2 (configs/sft2.yaml): 3 steps" in text


def test_the_wandb_table_is_one_run_in_the_pipelines_group(tmp_path):
    config = fake_run(tmp_path, ["sft2"])
    rows = collect_rows(config, tmp_path)
    write_table(config, tmp_path, rows)
    log_wandb_table(config, tmp_path, rows, group="pipeline-test")
    run = next((tmp_path / "wandb").glob("offline-run-*"))
    assert list(run.glob("files/media/table/pipeline/table1_*.table.json"))
    record = flushed_record(run, [b"pipeline-test", b"table1"])
    assert b"pipeline-test" in record and b"table1" in record
