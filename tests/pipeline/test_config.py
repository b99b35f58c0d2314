"""The pipeline's settings: YAML onto the schema, key=value overrides, errors that name the key."""

from pathlib import Path

import pytest

from coa.pipeline.config import StageSettings, load_pipeline_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PRESETS = sorted(CONFIGS.glob("pipeline*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.name for p in PRESETS])
def test_every_preset_loads_and_names_all_five_stages(preset):
    config = load_pipeline_config(str(preset), [])
    assert set(config.stages) == {"sft1", "sft2", "sft3", "rl1", "rl2"}
    assert config.rows and config.launcher in ("inprocess", "subprocess")


def test_the_default_is_the_quick_preset_with_the_papers_six_rows_and_the_untrained_model():
    config = load_pipeline_config(None, [])
    assert config.rows == ["base", "sft2", "sft1-sft2", "sft1-sft2-sft3", "sft1-sft2-sft3-rl1", "sft1-sft2-rl2", "sft1-sft2-sft3-rl1-rl2"]
    assert config.base_model is None and config.world["train"] > 0


def test_overrides_reach_rows_stages_and_nested_stage_keys():
    config = load_pipeline_config(None, [
        "rows=[sft2,sft1-sft2-rl2]", "stages.rl2.max_steps=3", "stages.rl2.overrides.model.init_args.lr=0.001", "seed=1",
    ])
    assert config.rows == ["sft2", "sft1-sft2-rl2"] and config.seed == 1
    assert config.stages["rl2"].max_steps == 3 and config.stages["rl2"].overrides["model"] == {"init_args": {"lr": 0.001}}
    assert isinstance(config.stages["sft1"], StageSettings)


@pytest.mark.parametrize("override, message", [
    ("rows=[sft2,sft1-sft5]", "unknown stages \\['sft5'\\]"),
    ("stages.rl3.max_steps=3", "stages has unknown stages \\['rl3'\\]"),
    ("launcher=ray", "launcher='ray'"),
    ("stages.sft2.max_steps=0", "stages.sft2.max_steps=0 must be >= 1"),
    ("stages.sft2.max_step=5", "max_step"),
    ("rows=[]", "rows is empty"),
])
def test_bad_settings_fail_naming_the_file_and_key(override, message):
    with pytest.raises(ValueError, match=message) as err:
        load_pipeline_config(None, [override])
    assert "pipeline.yaml" in str(err.value)
