"""The `coa fit` command line of one stage run: its YAML, its parent's export, its data, its folder, its W&B run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from coa.data.atomic import atomic_open
from coa.pipeline.config import PipelineConfig, packaged_config, stage_overrides, stage_settings
from coa.pipeline.overrides import merge_overrides
from coa.pipeline.spec import StageNode

POLICY_PATH = "model.init_args.policy.init_args.model_name_or_path"
STAGE_CONFIG = "stage_config.yaml"  # in a stage folder: the stage YAML `coa fit` ran with


@dataclass(frozen=True)
class StageData:
    """The files the stages read (resolved from the world or the config's `data`)."""

    corpus: str | None
    pairs_train: str | None
    pairs_dev: str | None
    sft_train: str | None
    sft_dev: str | None
    sft3_train: str | None
    rl_train: str | None


def stage_dir(out: Path, node: StageNode) -> Path:
    return out / node.key


def init_model(out: Path, node: StageNode, base_model: str) -> str:
    """What the stage starts from: its parent's export, or the base model for a first stage."""
    return str(stage_dir(out, node.parent) / "model") if node.parent else base_model


def stage_yaml(config: PipelineConfig, stage: str) -> Path:
    return Path(stage_settings(config, stage).config or packaged_config(f"{stage}.yaml"))


def max_steps(config: PipelineConfig, stage: str) -> int:
    """The stage's optimizer steps: the pipeline's setting, else its YAML's trainer.max_steps."""
    steps = stage_settings(config, stage).max_steps
    return steps if steps is not None else int(OmegaConf.load(stage_yaml(config, stage)).trainer.max_steps)


def checkpoint_every(config: PipelineConfig, stage: str) -> int:
    every = stage_settings(config, stage).checkpoint_every_n_steps
    return every if every is not None else max(1, max_steps(config, stage) // 4)


DATA_FIELDS = {"sft1": ("pairs_train", "pairs_dev"), "sft2": ("sft_train", "sft_dev"), "sft3": ("sft3_train", "sft_dev"),
               "rl1": ("rl_train", None), "rl2": ("rl_train", None)}


FALLBACKS = {"sft3_train": "sft_train"}  # a field left unset takes this one's file


def data_args(stage: str, data: StageData) -> list[str]:
    """SFT1 reads pairs, SFT2/3 trajectories, the RL stages questions (and their BM25 tools the corpus, when given)."""
    train_field, val_field = DATA_FIELDS[stage]
    if getattr(data, train_field) is None:
        raise ValueError(f"pipeline: stage {stage} needs data.{train_field}: set it, or give a world that has the file")
    args = [f"--data.init_args.train_path={getattr(data, train_field)}"]
    if val_field and getattr(data, val_field):
        args.append(f"--data.init_args.val_path={getattr(data, val_field)}")
    return args + ([f"--corpus={data.corpus}"] if stage.startswith("rl") and data.corpus else [])


def logger_args(config: PipelineConfig, run_name: str, group: str) -> list[str]:
    """One W&B run per stage, named by its path (or "pretrain"), all in the pipeline's group."""
    if not config.wandb.enabled:
        return ["--trainer.logger=false"]
    logger = "--trainer.logger.init_args"
    return [f"{logger}.project={config.wandb.project}", f"{logger}.name={run_name}", f"{logger}.group={group}"]


def write_merged_config(source: Path, overrides: dict, folder: Path, where: str) -> Path:
    """`source` with `overrides` (the pipeline's `where`) merged in, written to folder/stage_config.yaml."""
    merged = merge_overrides(yaml.safe_load(source.read_text(encoding="utf-8")), overrides)
    path = folder / STAGE_CONFIG
    with atomic_open(path) as f:
        f.write(f"# {source} with the pipeline's {where}\n")
        yaml.safe_dump(merged, f, sort_keys=False)
    return path


def write_stage_config(config: PipelineConfig, node: StageNode, out: Path) -> Path:
    """The stage's YAML with the pipeline's overrides merged in, written to out/<path>/stage_config.yaml."""
    return write_merged_config(stage_yaml(config, node.stage), stage_overrides(config, node.stage), stage_dir(out, node),
                               f"stage_overrides and stages.{node.stage}.overrides")


@dataclass(frozen=True)
class FitRun:
    """What sets one `coa fit` run of the pipeline apart: its YAML, folder, steps, starting model, data and W&B name."""

    config_file: Path
    folder: Path
    max_steps: int
    checkpoint_every: int
    model: str
    data: list[str]
    run_name: str
    extra: list[str]


def fit_args(config: PipelineConfig, run: FitRun, group: str) -> list[str]:
    """`coa fit` arguments (after "fit") for `run`, with the pipeline's seed, threads, checkpoints and W&B group."""
    args = [
        "--config", str(run.config_file),
        f"--seed_everything={config.seed}",
        f"--trainer.default_root_dir={run.folder}",
        f"--trainer.max_steps={run.max_steps}",
        f"--trainer.callbacks.init_args.every_n_train_steps={run.checkpoint_every}",
        f"--{POLICY_PATH}={run.model}",
        *run.data,
        *logger_args(config, run.run_name, group),
    ]
    if config.keep_checkpoints is not None:
        args.append(f"--trainer.callbacks.init_args.save_top_k={config.keep_checkpoints}")
    if config.torch_threads:
        args.append(f"--torch_threads={config.torch_threads}")
    return args + list(run.extra)


def stage_args(config: PipelineConfig, node: StageNode, out: Path, base_model: str, data: StageData, group: str) -> list[str]:
    """`coa fit` arguments (after "fit") that train `node` from its parent's export into out/<path>/."""
    run = FitRun(
        write_stage_config(config, node, out), stage_dir(out, node), max_steps(config, node.stage),
        checkpoint_every(config, node.stage), init_model(out, node, base_model), data_args(node.stage, data), node.key,
        list(stage_settings(config, node.stage).args),
    )
    return fit_args(config, run, group)


def fingerprint(config: PipelineConfig, node: StageNode, root: dict, data: StageData) -> dict:
    """What decides a stage's weights (its settings, its data, its parent's fingerprint; `root` for the base
    model and the world); a finished stage is reused only while this stays the same."""
    settings = stage_settings(config, node.stage)
    parent = fingerprint(config, node.parent, root, data) if node.parent else root
    return {
        "path": node.key, "config": settings.config or f"configs/{node.stage}.yaml", "seed": config.seed,
        "max_steps": max_steps(config, node.stage), "overrides": stage_overrides(config, node.stage),
        "args": list(settings.args),
        "data": data_args(node.stage, data), "parent": parent,
    }
