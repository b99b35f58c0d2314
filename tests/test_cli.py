"""The `coa` entry point: its own commands, Lightning's, and W&B offline unless told otherwise."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coa.cli import main

ROOT = Path(__file__).resolve().parents[1]


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


def test_hub_id_without_a_network_fails_fast_with_one_line(tmp_path):
    with socket.socket() as closed:  # a hub endpoint nobody listens on: the network is unreachable,
        closed.bind(("127.0.0.1", 0))  # on a machine with a network as well as in a sandbox without one
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_ENDPOINT"] = endpoint
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "coa.cli", "fit", "--config", str(ROOT / "configs" / "sft2.yaml"),
         "--model.init_args.policy.init_args.model_name_or_path=nobody/nothing",
         f"--trainer.default_root_dir={tmp_path}"],
        capture_output=True, text=True, env=env,
    )
    seconds = time.perf_counter() - start
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "coa: policy.model_name_or_path='nobody/nothing' is no local directory and the Hugging Face hub cannot be "
        "reached (offline); download it on a machine with a network (hf download nobody/nothing --local-dir DIR) "
        "and pass DIR"
    )
    assert "Traceback" not in proc.stderr and "Union subtypes" not in proc.stderr and "Retrying" not in proc.stderr
    # a loose bound, only to catch the retries (before: ~55 s, 5 per file, 1+2+4+8+8 s apart, then a 170-line union
    # dump); the time itself is measured, not asserted: ~9 s here, mostly start-up, 16.5 s on a loaded CI machine
    assert seconds < 40


def test_a_constructor_error_under_fit_is_one_line_naming_the_field(tmp_path, small_world, small_model_dir):
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    proc = subprocess.run(
        [sys.executable, "-m", "coa.cli", "fit", "--config", str(ROOT / "configs" / "sft2.yaml"),
         f"--model.init_args.policy.init_args.model_name_or_path={small_model_dir}",
         "--model.init_args.policy.init_args.dtype=fp32", f"--trainer.default_root_dir={tmp_path}"],
        capture_output=True, text=True, env=env,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("coa: policy.dtype='fp32' is not one of float32")
    assert "Traceback" not in proc.stderr and "Union subtypes" not in proc.stderr


@pytest.mark.parametrize("given, expected", [(None, "offline"), ("", "offline"), ("online", "online"), ("disabled", "disabled")])
def test_wandb_mode_defaults_to_offline_and_an_empty_one_counts_as_unset(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    if given is not None:
        env["WANDB_MODE"] = given
    code = "import os; from coa.cli import _defaults_for_every_run as d; d(); print(os.environ['WANDB_MODE'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.stdout.strip() == expected, proc.stderr
