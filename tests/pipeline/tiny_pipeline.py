"""A tiny pipeline: a ~40-person world, a 2-layer model, each stage 2-3 steps, RL with 2 questions x 2 rollouts;
and a callback that stops a stage once, as Ctrl-C or SIGKILL would."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import lightning as L
from omegaconf import OmegaConf

from coa.pipeline.config import PipelineConfig, check

ROLLOUT = {"group_size": 2, "max_actions": 2, "max_turn_tokens": 16, "max_response_tokens": 48, "samples_every_n_steps": 100}
QUIET = {"enable_progress_bar": False, "enable_model_summary": False}
RL = {
    "max_steps": 2, "checkpoint_every_n_steps": 1,
    "overrides": {"trainer": {"callbacks": {0: {"init_args": ROLLOUT}}, **QUIET},
                  "data": {"init_args": {"batch_size": 2}}, "model": {"init_args": {"warmup_steps": 0}}},
}
SFT = {"max_steps": 3, "checkpoint_every_n_steps": 1, "overrides": {"trainer": QUIET, "data": {"init_args": {"batch_size": 4}}}}
TINY_ROWS = ["base", "sft2", "sft1-sft2-sft3-rl1", "sft1-sft2-rl2"]  # six stage runs: every kind, sft1-sft2 shared
HELPERS_DIR = Path(__file__).parent  # this module is importable (also by class path) once this is on sys.path


def tiny_settings(out: Path, rows: list[str] | None = None) -> dict:
    return {
        "out": str(out), "seed": 0, "torch_threads": 1, "rows": rows or TINY_ROWS, "keep_checkpoints": 1,
        "world": {"persons": 40, "cities": 10, "countries": 5, "companies": 10, "books": 20,
                  "train": 200, "dev": 20, "test": 12, "rl": 20, "rl_fraction": 0.2, "topk": 1},
        "vocab_size": 400,
        "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_position_embeddings": 1024},
        "pretrain": {"max_steps": 2, "passes": 1, "overrides": {"trainer": QUIET, "data": {"init_args": {"batch_size": 4}}}},
        "stages": {"sft1": SFT, "sft2": SFT, "sft3": SFT, "rl1": RL, "rl2": RL},
        "eval": {"max_actions": 2, "max_new_tokens": 24, "batch_size": 16, "modes": ["search", "closed_book", "naive_rag"]},
        "wandb": {"enabled": False},
    }


def to_config(settings: dict) -> PipelineConfig:
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PipelineConfig), settings))
    check(config)
    return config


def kill_once(settings: dict, stage: str, flag: Path, at_step: int, hard: bool = False) -> dict:
    """`settings` with a callback in every `stage` run that stops the run at `at_step`, once (the flag file remembers)."""
    killer = {"class_path": "tiny_pipeline.KillOnce", "init_args": {"flag": str(flag), "at_step": at_step, "hard": hard}}
    stages = dict(settings["stages"])
    stages[stage] = {**stages[stage], "args": ["--trainer.callbacks+=" + json.dumps(killer)]}
    return {**settings, "stages": stages}


class KillOnce(L.Callback):
    def __init__(self, flag: str, at_step: int = 2, hard: bool = False) -> None:
        self.flag, self.at_step, self.hard = Path(flag), at_step, hard

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step and not self.flag.exists():
            self.flag.write_text(f"stopped at step {self.at_step}")
            if self.hard:
                os.kill(os.getpid(), signal.SIGKILL)
            raise KeyboardInterrupt
