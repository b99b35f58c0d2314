"""The tiny base model's reading pretraining, before any stage: `configs/pretrain.yaml` on reading texts about
another world (`coa.world.reading`), once; a finished run is reused, a killed one resumes from its last checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from coa.pipeline.config import PipelineConfig, packaged_config
from coa.pipeline.launch import LAUNCH
from coa.pipeline.markers import changed_keys, is_done, read_started, write_marker, write_started
from coa.pipeline.prepare import check_unchanged
from coa.pipeline.stage_args import FitRun, fit_args, write_merged_config

READING_FILE = "reading.jsonl"
STARTED_FILE = "started.json"  # the fingerprint a run started with, so that a killed one resumes only alike


def pretrain_fingerprint(config: PipelineConfig, init_fingerprint: dict) -> dict:
    p = config.pretrain
    lists = {"list_share": p.list_share} if p.list_share else {}  # absent when 0: runs from before it stay reusable
    return {**lists, "config": p.config or "configs/pretrain.yaml", "max_steps": p.max_steps, "passes": p.passes,
            "comparison_share": p.comparison_share, "overrides": p.overrides, "args": list(p.args), "seed": reading_seed(config),
            "init": init_fingerprint}


def reading_seed(config: PipelineConfig) -> int:
    """The seed the reading texts are drawn with: pretrain.seed, else the pipeline's."""
    return config.seed if config.pretrain.seed is None else config.pretrain.seed


def pretrain_base_model(config: PipelineConfig, init_model: Path, folder: Path, init_fingerprint: dict,
                        group: str) -> tuple[str, dict]:
    """Pretrains `init_model` to read into `folder`/model (reused when done alike); returns it and its fingerprint."""
    from coa.world.reading import write_reading_corpus

    fingerprint = pretrain_fingerprint(config, init_fingerprint)
    check_unchanged(folder, fingerprint, "reading-pretrained base model", folder.parent.parent)
    model = folder / "model"
    if is_done(folder, fingerprint) and model.is_dir():
        print(f"[pipeline] reading pretraining: done before, reused ({model})", flush=True)
        return str(model), fingerprint
    check_started_alike(folder, fingerprint)
    texts = folder / READING_FILE
    if not texts.is_file():
        p = config.pretrain
        write_reading_corpus(texts, reading_seed(config), p.passes, p.comparison_share, p.list_share)
    args = pretrain_args(config, init_model, folder, texts, group)
    resuming = (folder / "checkpoints" / "last.ckpt").is_file()
    print(f"[pipeline] reading pretraining: {config.pretrain.max_steps} steps on {texts} -> {model}"
          + (" (resuming from its last checkpoint)" if resuming else ""), flush=True)
    write_started(folder, STARTED_FILE, fingerprint)
    LAUNCH[config.launcher](args + (["--ckpt_path", "last"] if resuming else []))
    write_marker(folder, fingerprint)
    return str(model), fingerprint


def check_started_alike(folder: Path, fingerprint: dict) -> None:
    """A killed pretraining resumes only with the settings it started with; other settings raise naming them."""
    started = read_started(folder, STARTED_FILE)
    if started is None:
        return
    changed = changed_keys(started, json.loads(json.dumps(fingerprint)))
    if changed:
        raise ValueError(f"pipeline: {folder} (reading pretraining) was started with other settings (changed: "
                         f"{', '.join(changed)}); choose another `out`, or delete {folder} to start it afresh")


def pretrain_args(config: PipelineConfig, init_model: Path, folder: Path, texts: Path, group: str) -> list[str]:
    """`coa fit` arguments (after "fit") for the pretraining run in `folder`."""
    p = config.pretrain
    source = Path(p.config or packaged_config("pretrain.yaml"))
    run = FitRun(
        write_merged_config(source, p.overrides, folder, "pretrain.overrides"), folder, p.max_steps,
        max(1, p.max_steps // 4), str(init_model), [f"--data.init_args.train_path={texts}"], "pretrain", list(p.args),
    )
    return fit_args(config, run, group)
