"""`coa quickstart`: world -> tokenizer -> tiny model -> SFT2 -> SFT3 -> eval table, from one config."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from omegaconf import OmegaConf

from coa.models.from_world import build_tokenizer_and_model
from coa.models.tiny import TinyModelConfig
from coa.world.build import build_world
from coa.world.config import WorldConfig, world_model_sft


@dataclass
class EvalSettings:
    split: str = "test"
    max_actions: int = 5
    max_new_tokens: int = 128


@dataclass
class QuickstartConfig:
    """The quickstart's settings; stage details live in configs/sft2.yaml and configs/sft3.yaml."""

    out: str = "runs/quickstart"
    seed: int = 0
    torch_threads: int | None = None
    world: dict = field(default_factory=dict)
    vocab_size: int = 4096
    model: dict = field(default_factory=dict)
    sft2_steps: int = 700
    sft3_steps: int = 100
    eval: EvalSettings = field(default_factory=EvalSettings)


def packaged_config(name: str) -> Path:
    """A YAML file shipped in coa.configs (the repo's configs/ folder)."""
    return Path(str(resources.files("coa.configs").joinpath(name)))


def load_config(path: str | None, overrides: list[str]) -> QuickstartConfig:
    """Reads the YAML onto the schema; unknown keys and wrong types fail naming the file and key."""
    source = Path(path) if path else packaged_config("quickstart.yaml")
    schema = OmegaConf.structured(QuickstartConfig)
    try:
        merged = OmegaConf.merge(schema, OmegaConf.load(source), OmegaConf.from_dotlist(overrides))
    except Exception as e:  # omegaconf's errors name the key; add the file
        raise ValueError(f"{source}: {e}") from None
    config = OmegaConf.to_object(merged)
    config.world = WorldConfig(seed=config.seed, prompt="autocoa", **config.world)
    config.model = TinyModelConfig(seed=config.seed, **config.model)
    return config


def sft_train_file(stage: str, world_dir: Path) -> Path:
    """SFT3 (the world model) learns from the trajectories with the world's own names where the world renamed some."""
    return world_model_sft(world_dir) if stage == "sft3" else world_dir / "sft" / "train.jsonl"


def fit_stage(stage: str, model_dir: Path, world_dir: Path, out: Path, steps: int, config: QuickstartConfig) -> Path:
    """Runs `coa fit --config configs/<stage>.yaml` with the quickstart's paths; returns the exported model."""
    import wandb

    from coa.lightning_cli import run_lightning_cli

    root = out / stage
    args = [
        "fit", "--config", str(packaged_config(f"{stage}.yaml")),
        f"--seed_everything={config.seed}",
        f"--trainer.default_root_dir={root}",
        f"--trainer.max_steps={steps}",
        f"--model.init_args.policy.init_args.model_name_or_path={model_dir}",
        f"--data.init_args.train_path={sft_train_file(stage, world_dir)}",
        f"--data.init_args.val_path={world_dir / 'sft' / 'dev.jsonl'}",
    ]
    if config.torch_threads:
        args.append(f"--torch_threads={config.torch_threads}")
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI gets its arguments from `args`, not our command line
    try:
        run_lightning_cli(args)
    finally:
        sys.argv = argv
    wandb.finish()  # one W&B run per stage
    return root / "model"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="coa quickstart", description=__doc__)
    parser.add_argument("--config", default=None, help="YAML (default: the packaged configs/quickstart.yaml)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. sft2_steps=50 out=/tmp/q")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides)
    run(config)


def run(config: QuickstartConfig) -> dict[str, dict]:
    """Runs every step; evaluates each stage's model; returns {stage: metrics}."""
    start = time.time()
    out = Path(config.out)
    world_dir = out / "world"
    print(f"[quickstart] world -> {world_dir}", flush=True)
    build_world(world_dir, config.world)
    print("[quickstart] tokenizer + tiny model", flush=True)
    models = {"init": build_tokenizer_and_model(world_dir, config.vocab_size, config.model, out / "model" / "init")}
    models["sft2"] = fit_stage("sft2", models["init"], world_dir, out, config.sft2_steps, config)
    if config.sft3_steps > 0:
        models["sft3"] = fit_stage("sft3", models["sft2"], world_dir, out, config.sft3_steps, config)
    results = {}
    for stage in [s for s in ("sft2", "sft3") if s in models]:
        results[stage] = evaluate_stage(stage, models[stage], world_dir, out, config)
    print(f"[quickstart] done in {time.time() - start:.0f} s; tables in {out / 'eval'}/<stage>/table.md", flush=True)
    return results


def evaluate_stage(stage: str, model_dir: Path, world_dir: Path, out: Path, config: QuickstartConfig) -> dict:
    """The stage's model on the held-out split, with search and closed-book; prints the table."""
    from coa.commands.evaluate import evaluate_model

    print(f"[quickstart] eval {stage} ({model_dir}) on {config.eval.split}", flush=True)
    report = evaluate_model(
        model_dir=str(model_dir),
        qa_path=str(world_dir / "qa" / f"{config.eval.split}.jsonl"),
        corpus_path=str(world_dir / "corpus.jsonl"),
        topk=config.world.topk,
        prompt="short",
        max_actions=config.eval.max_actions,
        max_new_tokens=config.eval.max_new_tokens,
        out_dir=str(out / "eval" / stage),
        torch_threads=config.torch_threads,
    )
    print(f"\n{stage}: held-out {config.eval.split} questions\n{report.markdown}\n", flush=True)
    return report.metrics
