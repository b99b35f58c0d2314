"""The `coa` entry point: its own commands, Lightning's, and W&B offline unless told otherwise."""

import json
import os
import subprocess
import sys

import pytest

from coa.cli import main


def test_help_lists_every_command(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for command in ("fit", "world build", "eval", "quickstart"):
        assert command in out


def test_world_build_prints_counts(tmp_path, capsys):
    main(["world", "build", "--out", str(tmp_path), "--persons", "30", "--cities", "8", "--countries", "4",
          "--companies", "8", "--books", "12", "--train", "40", "--dev", "10", "--test", "10"])
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (counts["train"], counts["dev"], counts["test"]) == (40, 10, 10)


def test_eval_on_a_missing_file_names_it(tmp_path, small_model_dir, small_world):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        main(["eval", "--model", str(small_model_dir), "--qa", str(tmp_path / "nope.jsonl"), "--corpus", str(small_world / "corpus.jsonl")])


def test_bad_config_from_the_shell_exits_naming_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  class_path: coa.modules.sft.SFTModule\n  init_args:\n    lrr: 1\n")
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    proc = subprocess.run([sys.executable, "-m", "coa.cli", "fit", "--config", str(bad)], capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert f"bad config in {bad}" in proc.stderr
