"""What a pipeline run changed in its stage YAMLs, in one line: Table 1's footnote, so a row that runs coa's variant
of a stage (the quick preset's SFT3 and RL2) says so beside its numbers."""

from __future__ import annotations

import json
from typing import Any

from coa.pipeline.config import PipelineConfig, stage_overrides
from coa.pipeline.spec import parse_row
from coa.pipeline.stage_args import max_steps


def dotted(overrides: dict, prefix: str = "") -> list[str]:
    """Each leaf of nested overrides as `key.path=value`: {"data": {"init_args": {"kinds": ["comparison"]}}} ->
    ['data.init_args.kinds=["comparison"]']."""
    items = []
    for key, value in overrides.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        items += dotted(value, name) if isinstance(value, dict) and value else [f"{name}={_text(value)}"]
    return items


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def stage_settings_note(config: PipelineConfig) -> str:
    """One line naming, for every stage the rows use, its YAML, its steps and each key the run changed in it
    (`stage_overrides` and `stages.<stage>.overrides`); "" when the rows use no stage. `stages.<stage>.args` are left out: they say how a
    stage runs (accelerator, callbacks), and a run resumed with another callback is the same run."""
    stages = list(dict.fromkeys(stage for row in config.rows for stage in parse_row(row)))
    parts = []
    for stage in stages:
        settings = config.stages[stage]
        changed = [f"{max_steps(config, stage)} steps", *sorted(dotted(stage_overrides(config, stage)))]  # sorted: a YAML's key order is no setting
        parts.append(f"{stage} ({settings.config or f'configs/{stage}.yaml'}): " + ", ".join(changed))
    if not parts:
        return ""
    return "stages: each its YAML with the run's data, seed and folders, and these steps and changes: " + "; ".join(parts)
