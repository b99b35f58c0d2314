"""One stage's `coa fit` command line: its parent's export, its data, its folder, its W&B run, its overrides."""

from pathlib import Path

import pytest
import yaml

from coa.pipeline.spec import StageNode
from coa.pipeline.stage_args import STAGE_CONFIG, StageData, fingerprint, stage_args

from tiny_pipeline import tiny_settings, to_config

DATA = StageData(corpus="w/corpus.jsonl", pairs_train="w/pairs/train.json", pairs_dev="w/pairs/dev.json",
                 sft_train="w/sft/train.jsonl", sft_dev=None, sft3_train="w/sft/train_world_names.jsonl",
                 rl_train="w/qa/rl.jsonl")
POLICY = "--model.init_args.policy.init_args.model_name_or_path"


def test_a_stage_starts_from_its_parents_export_and_reads_its_kind_of_data(tmp_path):
    config = to_config(tiny_settings(tmp_path))
    args = stage_args(config, StageNode(("sft1", "sft2", "rl2")), tmp_path, "base", DATA, "g1")
    assert f"{POLICY}={tmp_path / 'sft1-sft2' / 'model'}" in args
    assert f"--trainer.default_root_dir={tmp_path / 'sft1-sft2-rl2'}" in args
    assert "--data.init_args.train_path=w/qa/rl.jsonl" in args and "--corpus=w/corpus.jsonl" in args
    assert "--trainer.max_steps=2" in args and "--trainer.callbacks.init_args.every_n_train_steps=1" in args
    assert "--trainer.logger=false" in args  # W&B off in the tiny settings
    first = stage_args(config, StageNode(("sft1",)), tmp_path, "base", DATA, "g1")
    assert f"{POLICY}=base" in first and "--data.init_args.val_path=w/pairs/dev.json" in first
    sft2 = stage_args(config, StageNode(("sft2",)), tmp_path, "base", DATA, "g1")
    assert not any(a.startswith("--data.init_args.val_path") for a in sft2)  # no dev file given


def test_one_wandb_group_per_pipeline_one_run_per_stage(tmp_path):
    config = to_config({**tiny_settings(tmp_path), "wandb": {"enabled": True, "project": "p"}})
    args = stage_args(config, StageNode(("sft1", "sft2")), tmp_path, "base", DATA, "pipeline-x")
    logger = "--trainer.logger.init_args"
    assert {f"{logger}.group=pipeline-x", f"{logger}.name=sft1-sft2", f"{logger}.project=p"} <= set(args)


def test_overrides_are_merged_into_the_stage_yaml_written_beside_the_run(tmp_path):
    config = to_config(tiny_settings(tmp_path))
    args = stage_args(config, StageNode(("rl1",)), tmp_path, "base", DATA, "g")
    path = Path(args[args.index("--config") + 1])
    assert path == tmp_path / "rl1" / STAGE_CONFIG
    written = yaml.safe_load(path.read_text())
    rollout = written["trainer"]["callbacks"][0]["init_args"]
    assert rollout["group_size"] == 2 and rollout["temperature"] == 0.6  # changed, and kept
    assert written["model"]["init_args"]["export_dir"] == "${...trainer.default_root_dir}/model"  # interpolations survive


def test_a_stage_needs_its_data(tmp_path):
    config = to_config(tiny_settings(tmp_path))
    with pytest.raises(ValueError, match="stage rl2 needs data.rl_train"):
        stage_args(config, StageNode(("rl2",)), tmp_path, "base", StageData(*[None] * 7), "g")


def test_a_stage_fingerprint_holds_its_parents_so_a_changed_parent_changes_the_children(tmp_path):
    settings = tiny_settings(tmp_path)
    node = StageNode(("sft1", "sft2", "rl2"))
    before = fingerprint(to_config(settings), node, {"base_model": "m"}, DATA)
    settings["stages"]["sft1"] = {**settings["stages"]["sft1"], "max_steps": 4}
    after = fingerprint(to_config(settings), node, {"base_model": "m"}, DATA)
    assert before["parent"]["parent"]["max_steps"] == 3 and after["parent"]["parent"]["max_steps"] == 4
    assert before["max_steps"] == after["max_steps"] == 2


def test_sft3_reads_the_trajectories_with_the_worlds_own_names(tmp_path):
    config = to_config(tiny_settings(tmp_path))
    sft3 = stage_args(config, StageNode(("sft1", "sft2", "sft3")), tmp_path, "base", DATA, "g1")
    sft2 = stage_args(config, StageNode(("sft1", "sft2")), tmp_path, "base", DATA, "g1")
    assert "--data.init_args.train_path=w/sft/train_world_names.jsonl" in sft3
    assert "--data.init_args.train_path=w/sft/train.jsonl" in sft2


def test_stage_overrides_reach_every_stage_and_a_stages_own_win(tmp_path):
    from coa.pipeline.settings_note import stage_settings_note

    settings = tiny_settings(tmp_path)
    policy = {"model": {"init_args": {"lr": 0.5, "policy": {"init_args": {"dtype": "bfloat16"}}}}}
    config = to_config({**settings, "stage_overrides": policy})
    config.stages["sft2"].overrides = {**config.stages["sft2"].overrides, "model": {"init_args": {"lr": 0.25}}}
    for stage, lr in (("sft1", 0.5), ("sft2", 0.25), ("rl2", 0.5)):
        args = stage_args(config, StageNode((stage,)), tmp_path, "base", DATA, "g")
        model = yaml.safe_load(Path(args[args.index("--config") + 1]).read_text())["model"]["init_args"]
        assert model["lr"] == lr and model["policy"]["init_args"]["dtype"] == "bfloat16", stage
    assert fingerprint(config, StageNode(("sft2",)), {}, DATA)["overrides"]["model"]["init_args"]["lr"] == 0.25
    plain = fingerprint(to_config(settings), StageNode(("sft2",)), {}, DATA)
    assert plain["overrides"] == settings["stages"]["sft2"]["overrides"]  # none given: the stage's own, as before
    assert "model.init_args.policy.init_args.dtype=bfloat16" in stage_settings_note(config)
