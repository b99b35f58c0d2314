"""Every file in configs/ loads; a bad config or data file fails naming the file and the field or line."""

import json
from pathlib import Path

import pytest

from coa.callbacks.rollout import RolloutCallback
from coa.callbacks.trigger_f1 import TriggerF1
from coa.commands.quickstart import load_config
from coa.lightning_cli import run_lightning_cli
from coa.modules.sft import SFTModule
from coa.modules.grpo import GRPOModule
from coa.modules.sft1 import TriggerModule
from coa.rollout.environments import RealEnvironment

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# quickstart.yaml and the pipeline presets are not stage configs: tests/pipeline/test_config.py loads the presets
STAGES = sorted(p for p in CONFIGS.glob("*.yaml") if p.name != "quickstart.yaml" and not p.name.startswith("pipeline"))
MODULES = {
    "sft1.yaml": TriggerModule, "sft2.yaml": SFTModule, "sft3.yaml": SFTModule, "rl1.yaml": GRPOModule, "rl2.yaml": GRPOModule,
    "pretrain.yaml": SFTModule,
}
# stage 1 reads CoT+A pairs, the RL stages questions, the others trajectories
DATA = {"sft1.yaml": ("pairs/train.json", "pairs/dev.json"), "rl1.yaml": ("qa/train.jsonl", "qa/dev.jsonl"),
        "rl2.yaml": ("qa/train.jsonl", "qa/dev.jsonl"), "pretrain.yaml": ("corpus.jsonl", "corpus.jsonl")}  # plain texts


def data_paths(world: Path, config: str) -> tuple[Path, Path]:
    train, val = DATA.get(config, ("sft/train.jsonl", "sft/dev.jsonl"))
    return world / train, world / val


def overrides(world: Path, model_dir: Path, root: Path, config: str = "sft2.yaml") -> list[str]:
    train, val = data_paths(world, config)
    return [
        f"--trainer.default_root_dir={root}",
        f"--model.init_args.policy.init_args.model_name_or_path={model_dir}",
        f"--data.init_args.train_path={train}",
        f"--data.init_args.val_path={val}",
        *([f"--corpus={world / 'corpus.jsonl'}"] if config.startswith("rl") else []),
    ]


@pytest.mark.parametrize("config", STAGES, ids=[p.name for p in STAGES])
def test_stage_config_instantiates_with_interpolations_resolved(config, small_world, small_model_dir, tmp_path):
    args = ["--config", str(config), *overrides(small_world, small_model_dir, tmp_path, config.name)]
    cli = run_lightning_cli(args, run=False)
    assert type(cli.model) is MODULES[config.name]
    assert cli.model.hparams.export_dir == f"{tmp_path}/model"
    assert cli.datamodule.hparams.tokenizer_path == str(small_model_dir)
    for setting in TOKENIZER_SETTINGS:  # the datamodule's tokenizer is set up as the policy's
        assert cli.datamodule.hparams[setting] == getattr(cli.model.policy, setting)
    assert Path(cli.trainer.checkpoint_callback.dirpath) == tmp_path / "checkpoints"
    for callback in cli.trainer.callbacks:  # stage 1 measures triggering on the datamodule's own held-out pairs
        if isinstance(callback, TriggerF1):
            assert callback.pairs_path == str(data_paths(small_world, config.name)[1])
            assert callback.template == cli.datamodule.template
        if isinstance(callback, RolloutCallback):  # the tool searches the corpus given once, at the top
            env = callback.environment
            tool = env.tool if isinstance(env, RealEnvironment) else env.fidelity_tool
            assert len(tool.passages) == sum(1 for _ in open(small_world / "corpus.jsonl"))


@pytest.mark.parametrize("config", STAGES, ids=[p.name for p in STAGES])
def test_the_runs_seed_reaches_the_shuffle_and_the_rollouts(config, small_world, small_model_dir, tmp_path):
    args = ["--config", str(config), *overrides(small_world, small_model_dir, tmp_path, config.name), "--seed_everything=3"]
    cli = run_lightning_cli(args, run=False)
    assert cli.datamodule.hparams.seed == 3
    rollouts = [c for c in cli.trainer.callbacks if isinstance(c, RolloutCallback)]
    assert [c.seed for c in rollouts] == ([3] if config.name.startswith("rl") else [])


TOKENIZER_SETTINGS = ("trust_remote_code", "chat_template", "add_action_tokens")
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}"


@pytest.mark.parametrize("config", STAGES, ids=[p.name for p in STAGES])
def test_the_policys_tokenizer_settings_reach_the_datamodule(config, small_world, small_model_dir, tmp_path):
    policy = "--model.init_args.policy.init_args"
    args = ["--config", str(config), *overrides(small_world, small_model_dir, tmp_path, config.name),
            f"{policy}.add_action_tokens=true", f"{policy}.chat_template={CHAT_TEMPLATE}"]
    cli = run_lightning_cli(args, run=False)
    assert cli.datamodule.hparams.add_action_tokens is True and cli.datamodule.hparams.chat_template == CHAT_TEMPLATE
    assert cli.datamodule.tokenizer.get_vocab() == cli.model.policy.tokenizer.get_vocab()
    assert cli.datamodule.tokenizer.chat_template == cli.model.policy.tokenizer.chat_template == CHAT_TEMPLATE


def test_quickstart_config_loads_onto_its_schema():
    config = load_config(None, ["sft2_steps=5"])
    assert config.sft2_steps == 5 and config.world.topk >= 1 and config.model.hidden_size > 0


def test_unknown_key_names_the_file_and_the_key(tmp_path, small_world, small_model_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "sft2.yaml").read_text().replace("    batch_size: 8", "    batch_sise: 8"))
    with pytest.raises(ValueError, match=r"bad config in .*bad.yaml(.|\n)*batch_sise"):
        run_lightning_cli(["--config", str(bad), *overrides(small_world, small_model_dir, tmp_path)], run=False)


def test_wrong_type_names_the_file_and_the_key(tmp_path, small_world, small_model_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "sft2.yaml").read_text().replace("lr: 3.0e-3", "lr: fast"))
    with pytest.raises(ValueError, match=r"bad config in .*bad.yaml(.|\n)*\"lr\""):
        run_lightning_cli(["--config", str(bad), *overrides(small_world, small_model_dir, tmp_path)], run=False)


def test_quickstart_unknown_key_names_file_and_key(tmp_path):
    bad = tmp_path / "q.yaml"
    bad.write_text("sft2_stepz: 4\n")
    with pytest.raises(ValueError, match=r"q.yaml.*sft2_stepz"):
        load_config(str(bad), [])


def test_bad_data_line_fails_at_setup_naming_file_and_line(tmp_path, small_world, small_model_dir):
    data = tmp_path / "train.jsonl"
    lines = (small_world / "sft" / "train.jsonl").read_text().splitlines()[:10]
    lines[6] = json.dumps({"id": "x", "messages": [{"role": "user", "content": "q"}]})
    data.write_text("\n".join(lines) + "\n")
    args = ["--config", str(CONFIGS / "sft2.yaml"), *overrides(small_world, small_model_dir, tmp_path), f"--data.init_args.train_path={data}"]
    cli = run_lightning_cli(args, run=False)
    with pytest.raises(ValueError, match=r"train.jsonl:7: field 'messages'"):
        cli.datamodule.setup("fit")


STRATEGIES = sorted((CONFIGS / "strategies").glob("*.yaml"))


@pytest.mark.parametrize("overlay", STRATEGIES, ids=[p.name for p in STRATEGIES])
def test_strategy_overlays_name_a_lightning_strategy_and_its_real_arguments(overlay):
    import importlib
    import inspect

    import yaml
    from lightning.pytorch.strategies import StrategyRegistry

    strategy = yaml.safe_load(overlay.read_text())["trainer"]["strategy"]
    if isinstance(strategy, str):
        assert strategy in StrategyRegistry.available_strategies()
        return
    module, name = strategy["class_path"].rsplit(".", 1)
    parameters = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    assert set(strategy.get("init_args", {})) <= set(parameters)


def test_a_reward_with_a_format_penalty_is_named_by_class_path_in_yaml(small_world, small_model_dir, tmp_path):
    from coa.rewards.em import ExactMatchReward

    args = ["--config", str(CONFIGS / "rl2.yaml"), *overrides(small_world, small_model_dir, tmp_path, "rl2.yaml"),
            "--trainer.callbacks.0.init_args.reward={class_path: coa.rewards.em.ExactMatchReward, init_args: {format_penalty: 0.5}}"]
    reward = run_lightning_cli(args, run=False).trainer.callbacks[0].reward
    assert isinstance(reward, ExactMatchReward) and reward.format_penalty == 0.5
