"""Short `coa fit` RL runs on the small world, and reading what they logged (shared by the GRPO and DDP tests)."""

import csv
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def rl_config(tmp_path: Path, stage: str = "rl2", reward: str | None = None, **rollout) -> Path:
    """configs/<stage>.yaml with the RolloutCallback's settings changed, written beside the test."""
    config = yaml.safe_load((ROOT / "configs" / f"{stage}.yaml").read_text())
    callback = config["trainer"]["callbacks"][0]["init_args"]
    # a random model runs out of tokens: its episodes are scored anyway ("reward"), so the tests' rewards can rise
    callback.update({"group_size": 4, "max_turn_tokens": 16, "max_response_tokens": 32, "max_actions": 2,
                     "truncation": "reward", **rollout})
    if reward is not None:
        callback["reward"] = reward
    path = tmp_path / f"{stage}_test.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def rl_args(config: Path, world: Path, model_dir: Path, root: Path, steps: int) -> list[str]:
    return [
        "fit", "--config", str(config),
        f"--corpus={world / 'corpus.jsonl'}",
        f"--trainer.default_root_dir={root}",
        f"--trainer.max_steps={steps}",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        f"--trainer.logger.init_args.save_dir={root}",
        "--trainer.callbacks.init_args.every_n_train_steps=3",
        f"--model.init_args.policy.init_args.model_name_or_path={model_dir}",
        "--model.init_args.warmup_steps=0",
        f"--data.init_args.train_path={world / 'qa' / 'train.jsonl'}",
        "--data.init_args.batch_size=2",
    ]


def logged(root: Path, name: str) -> list[float]:
    """The per-step values of one metric from the CSV logger's file (the newest run's: a resume adds a version)."""
    path = max(root.glob("*/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    rows = list(csv.DictReader(path.open()))
    return [float(r[name]) for r in rows if r.get(name) not in (None, "")]
