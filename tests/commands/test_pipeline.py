"""`coa pipeline` from the command line: a bad setting exits naming it; `coa pipeline table --run DIR`."""

import json

import pytest

from coa.cli import main


def test_help_lists_the_pipeline(capsys):
    main(["--help"])
    assert "pipeline table" in capsys.readouterr().out


def test_a_bad_setting_exits_with_one_line_naming_it():
    with pytest.raises(SystemExit, match=r"coa pipeline: .*pipeline.yaml: rows: 'sft9' has unknown stages"):
        main(["pipeline", "rows=[sft9]"])


def test_table_writes_table_1_again_from_a_finished_runs_evaluations(tmp_path, capsys):
    (tmp_path / "pipeline.yaml").write_text("rows: [sft2, sft1-sft2-rl2]\nwandb: {enabled: false}\n")
    for i, row in enumerate(["sft2", "sft1-sft2-rl2"]):
        (tmp_path / "eval" / row).mkdir(parents=True)
        metrics = {"search/all": {"n": 2, "em": i / 2, "f1": i / 2, "searches": 1.0, "format_error_rate": 0.0}}
        (tmp_path / "eval" / row / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    main(["pipeline", "table", "--run", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "| SFT1&2+RL2 | sft1-sft2-rl2 | 0.500 / 0.500 |" in printed
    assert (tmp_path / "table.md").read_text() in printed
    assert (tmp_path / "table.csv").is_file() and (tmp_path / "table.png").is_file()


def test_table_on_a_folder_that_is_no_run_says_so(tmp_path):
    with pytest.raises(SystemExit, match="pipeline.yaml not found"):
        main(["pipeline", "table", "--run", str(tmp_path)])
