"""`run_pipeline` end to end on the tiny pipeline: each shared stage trained once, Table 1 written, a rerun
trains nothing, an interrupted stage resumes to the very same models and table."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from coa.pipeline.report import TABLE_FILES
from coa.pipeline.runner import run_pipeline

from tiny_pipeline import HELPERS_DIR, kill_once, tiny_settings, to_config

STAGE_RUNS = ["sft2", "sft1", "sft1-sft2", "sft1-sft2-sft3", "sft1-sft2-sft3-rl1", "sft1-sft2-rl2"]
FINAL = ["base", "sft2", "sft1-sft2-sft3-rl1", "sft1-sft2-rl2"]  # "base": the untrained model
POLICY = "--model.init_args.policy.init_args.model_name_or_path"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted tiny pipeline: (out, result)."""
    out = tmp_path_factory.mktemp("pipeline") / "run"
    return out, run_pipeline(to_config(tiny_settings(out)))


def stage_args(out: Path, key: str) -> list[str]:
    return json.loads((out / key / "stage.json").read_text())["args"]


def test_each_stage_runs_once_from_its_parents_export_and_table_1_is_written(finished):
    out, result = finished
    assert result.trained == STAGE_RUNS and result.skipped == [] and result.evaluated == FINAL
    assert f"{POLICY}={out / 'sft1-sft2' / 'model'}" in stage_args(out, "sft1-sft2-rl2")
    assert f"{POLICY}={out / 'model' / 'pretrain' / 'model'}" in stage_args(out, "sft1")  # the base after pretraining
    assert f"--data.init_args.train_path={out / 'world' / 'pairs' / 'train.json'}" in stage_args(out, "sft1")
    assert f"--data.init_args.train_path={out / 'world' / 'qa' / 'rl.jsonl'}" in stage_args(out, "sft1-sft2-rl2")
    for name in TABLE_FILES:
        assert (out / name).stat().st_size > 0
    assert (out / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [(r["variant"], r["stages"]) for r in rows] == [
        ("base", "base"), ("SFT2", "sft2"), ("SFT1&2&3+RL1", "sft1-sft2-sft3-rl1"), ("SFT1&2+RL2", "sft1-sft2-rl2")
    ]
    assert {r["all/n"] for r in rows} == {"12"} and {r["entity=unseen/n"] for r in rows} == {"5"}
    header = result.table.splitlines()[0]
    for column in ("all (n=12)", "needs search", "unseen entities", "comparisons", "closed-book EM", "naive RAG EM",
                   "searches/q", "format errors"):
        assert column in header
    assert all(r["naive_rag/em"] != "" for r in rows)
    base_eval = json.loads((out / "eval" / "base" / "done.json").read_text())["fingerprint"]
    pretrained = json.loads((out / "model" / "pretrain" / "done.json").read_text())["fingerprint"]
    assert base_eval["stage"] == pretrained  # the base row is the model every first stage starts from
    assert pretrained["init"] == json.loads((out / "model" / "init" / "done.json").read_text())["fingerprint"]


def test_a_rerun_trains_and_evaluates_nothing_and_takes_seconds(finished, capsys):
    out, first = finished
    outputs = sorted(out.glob("*/model/model.safetensors")) + sorted(out.glob("eval/*/metrics.json"))
    stamps = {p: p.stat().st_mtime_ns for p in outputs}
    start = time.perf_counter()
    again = run_pipeline(to_config(tiny_settings(out)))
    seconds = time.perf_counter() - start
    assert again.trained == [] and again.evaluated == [] and again.skipped == STAGE_RUNS
    assert {p: p.stat().st_mtime_ns for p in outputs} == stamps
    printed = capsys.readouterr().out
    assert printed.count("done before, skipped") == len(STAGE_RUNS) + len(FINAL)
    assert again.table == first.table
    assert seconds < 30, f"a rerun with nothing to do took {seconds:.1f} s"


def test_a_stage_trained_with_other_settings_is_not_reused(finished):
    out, _ = finished
    settings = tiny_settings(out)
    settings["stages"]["rl2"] = {**settings["stages"]["rl2"], "max_steps": 3}
    with pytest.raises(ValueError, match=r"sft1-sft2-rl2 was trained with other settings \(changed: max_steps\)"):
        run_pipeline(to_config(settings))


def same_results(a: Path, b: Path) -> None:
    assert (a / "table.md").read_text() == (b / "table.md").read_text()
    for key in FINAL:
        assert (a / "eval" / key / "predictions.jsonl").read_text() == (b / "eval" / key / "predictions.jsonl").read_text()
    for key in STAGE_RUNS:
        wa, wb = load_file(a / key / "model" / "model.safetensors"), load_file(b / key / "model" / "model.safetensors")
        assert all(wa[name].equal(wb[name]) for name in wa), key


def test_an_interrupted_stage_resumes_and_ends_with_the_uninterrupted_table(finished, tmp_path, monkeypatch):
    baseline, _ = finished
    out = tmp_path / "run"
    settings = kill_once(tiny_settings(out), "rl1", tmp_path / "stopped", at_step=2)  # Ctrl-C in RL1, after step 1's checkpoint
    monkeypatch.syspath_prepend(str(HELPERS_DIR))
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning's answer to Ctrl-C
            run_pipeline(to_config(settings))
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores further Ctrl-C after one
    stage = out / "sft1-sft2-sft3-rl1"
    assert not (stage / "done.json").exists() and (stage / "checkpoints" / "last.ckpt").is_file()
    result = run_pipeline(to_config(settings))
    assert result.trained == ["sft1-sft2-sft3-rl1", "sft1-sft2-rl2"] and result.skipped == STAGE_RUNS[:4]
    assert f"--ckpt_path={stage / 'checkpoints' / 'last.ckpt'}" in stage_args(out, "sft1-sft2-sft3-rl1")
    assert json.loads((stage / "done.json").read_text())["resumed"] is True
    same_results(out, baseline)


@pytest.mark.slow
def test_a_pipeline_killed_hard_mid_stage_resumes_from_the_shell(finished, tmp_path):
    """SIGKILL of the whole `coa pipeline` process inside SFT2, then the same command again."""
    baseline, _ = finished
    out = tmp_path / "run"
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(kill_once(tiny_settings(out), "sft2", tmp_path / "stopped", at_step=2, hard=True)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HELPERS_DIR), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "coa.cli", "pipeline", "--config", str(config)]
    killed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "sft2" / "checkpoints" / "last.ckpt").is_file() and not (out / "sft2" / "done.json").exists()
    resumed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "stage 1/6 sft2 (SFT2): resumes from" in resumed.stdout
    same_results(out, baseline)


@pytest.mark.slow
def test_the_subprocess_launcher_gives_the_same_model(finished, tmp_path):
    baseline, _ = finished
    out = tmp_path / "run"
    result = run_pipeline(to_config({**tiny_settings(out, rows=["sft2"]), "launcher": "subprocess"}))
    assert result.trained == ["sft2"]
    wa, wb = load_file(out / "sft2" / "model" / "model.safetensors"), load_file(baseline / "sft2" / "model" / "model.safetensors")
    assert all(wa[name].equal(wb[name]) for name in wa)


def test_a_stage_trained_again_is_evaluated_again(tmp_path):
    out = tmp_path / "run"
    config = to_config(tiny_settings(out, rows=["sft2"]))
    run_pipeline(config)
    shutil.rmtree(out / "sft2")  # the user deletes the stage to train it afresh
    again = run_pipeline(config)
    assert again.trained == ["sft2"] and again.evaluated == ["sft2"]


def test_two_workers_run_branches_at_once_and_give_the_same_table(finished, tmp_path, monkeypatch):
    baseline, _ = finished
    out = tmp_path / "run"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HELPERS_DIR), os.environ.get("PYTHONPATH", "")]))
    result = run_pipeline(to_config({**tiny_settings(out), "workers": 2}))  # 1 thread each, as the baseline's one
    assert sorted(result.trained) == sorted(STAGE_RUNS) and sorted(result.evaluated) == sorted(FINAL)
    assert result.trained.index("sft1") < result.trained.index("sft1-sft2") < result.trained.index("sft1-sft2-rl2")
    same_results(out, baseline)
    again = run_pipeline(to_config({**tiny_settings(out), "workers": 2}))
    assert again.trained == [] and again.evaluated == []


def test_a_killed_pretraining_is_not_resumed_with_other_settings(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished[0] / "world", out / "world")
    shutil.copytree(finished[0] / "model" / "init", out / "model" / "init")
    started = finished[0] / "model" / "pretrain" / "started.json"
    (out / "model" / "pretrain").mkdir(parents=True)
    shutil.copy(started, out / "model" / "pretrain" / "started.json")  # as if killed before its done.json
    settings = tiny_settings(out)
    settings["pretrain"] = {**settings["pretrain"], "max_steps": 3}
    with pytest.raises(ValueError, match=r"reading pretraining\) was started with other settings \(changed: max_steps\)"):
        run_pipeline(to_config(settings))
