"""Each preset's stage overrides fit its stage YAML: every stage run of the preset instantiates (not trains)."""

from pathlib import Path

import pytest

from coa.lightning_cli import run_lightning_cli
from coa.pipeline.config import load_pipeline_config
from coa.pipeline.prepare import stage_data
from coa.pipeline.spec import StageNode
from coa.pipeline.stage_args import max_steps, stage_args

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PRESETS = sorted(CONFIGS.glob("pipeline*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.name for p in PRESETS])
def test_every_stage_of_the_preset_instantiates_with_its_overrides(preset, small_world, small_model_dir, tmp_path):
    config = load_pipeline_config(str(preset), [f"out={tmp_path}", "wandb.enabled=false"])
    data = stage_data(config, small_world)
    for stage in ("sft1", "sft2", "sft3", "rl1", "rl2"):
        args = stage_args(config, StageNode((stage,)), tmp_path, str(small_model_dir), data, "g")
        cli = run_lightning_cli(["--config", *args[1:]], run=False)
        assert cli.trainer.max_steps == max_steps(config, stage)
        assert Path(cli.trainer.checkpoint_callback.dirpath) == tmp_path / stage / "checkpoints"
