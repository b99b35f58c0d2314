"""configs/sweeps/*.yaml: W&B's sweep engine proposes parameter sets, W&B's agent code renders them into `coa fit`
command lines, coa's CLI parses them, and the SFT2 ones run a few steps with the swept values in the W&B run config.

Needs `sweeps` (coa[dev]): W&B's own sweep engine, the search its server runs (random, grid, bayes), which works
without an account; the test validates each sweep file against its schema and asks it for parameter sets as the
server would. Pinned to 0.2.0: 0.3.0 requires numpy<2, and pyarrow here needs numpy 2.
`pytest tests/test_sweeps.py -s` prints the sets, the command lines and what each run's W&B config holds.
"""

import json
import os
import random
import struct
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

with warnings.catch_warnings():  # sweeps declares pydantic-1 style settings
    warnings.simplefilter("ignore")
    sweeps = pytest.importorskip("sweeps", reason="W&B's sweep engine: pip install -e .[dev]")

from wandb import wandb_agent  # noqa: E402
from wandb.proto import wandb_internal_pb2  # noqa: E402

from coa.lightning_cli import ConfigError, run_lightning_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))
RUNS = 3


def proposals(sweep: dict, n: int = RUNS) -> list[dict]:
    """The first `n` parameter sets W&B's engine proposes, as its server sends them to an agent ({name: {value}})."""
    # random search draws with `random`, bayes with numpy's; seeded, the printed sets stay the same (seed 1: the
    # three SFT2 sets have three LoRA ranks, with seed 0 all three drew r=16)
    random.seed(1)
    np.random.seed(1)
    runs = []
    for _ in range(n):
        run = sweeps.next_run(sweep, runs, validate=True)
        run.state = sweeps.RunState.running  # proposed and started: grid search moves on to the next point
        runs.append(run)
    return [json.loads(json.dumps(run.config, default=lambda x: x.item())) for run in runs]  # JSON, as sent


def agent_command(sweep: dict, args: dict, run_id: str, monkeypatch, tmp_path: Path) -> list[str]:
    """The command W&B's agent starts for one parameter set: its own `Agent._command_run`, the process recorded.

    Like the agent, this leaves WANDB_RUN_ID=run_id in os.environ (undone after the test).
    """
    started = []

    def start(command, env, **_):  # in place of AgentProcess, which would run the command
        started.append(command)
        return SimpleNamespace()

    monkeypatch.setattr(wandb_agent, "AgentProcess", start)
    for name in ("WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):  # set by the agent; monkeypatch restores them
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))  # where the agent writes its parameter file
    agent = wandb_agent.Agent(api=None, queue=None, sweep_id="local")
    agent._sweep_command = list(sweep["command"])
    agent._command_run({"run_id": run_id, "program": sweep["program"], "args": args})
    return started[0]


def in_a_checkout(tmp_path: Path, monkeypatch) -> None:
    """cwd: a folder with the repository's configs/, as where `wandb agent` runs; the sweeps' runs/ land here."""
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)


def stage_args(world: Path, model_dir: Path, stage: str) -> list[str]:
    """What a user adds to a sweep's command for their model and data; here the small world and the tiny model."""
    if stage.startswith("rl"):
        return [f"--model.init_args.policy.init_args.model_name_or_path={model_dir}",
                f"--data.init_args.train_path={world / 'qa' / 'train.jsonl'}", f"--corpus={world / 'corpus.jsonl'}"]
    return [f"--model.init_args.policy.init_args.model_name_or_path={model_dir}",
            f"--data.init_args.train_path={world / 'sft' / 'train.jsonl'}",
            f"--data.init_args.val_path={world / 'sft' / 'dev.jsonl'}"]


def at(config, name: str):
    """`config`'s value at a sweep parameter's name; a number names a list item (trainer.callbacks.0.init_args.x)."""
    for part in name.split("."):
        config = config[int(part)] if isinstance(config, list) else config[part]
    return config


def values(args: dict) -> dict:
    return {name: arg["value"] for name, arg in args.items()}


def shown(values: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}"


def wandb_run_config(run_dir: Path) -> dict:
    """The config an offline W&B run recorded, {key: value}, read from its transaction log (run-ID.wandb).

    The log is wandb's LevelDB-style file: a 7-byte header, then 32 KiB blocks of chunks (crc32, length, type:
    1 whole, 2 first, 3 middle, 4 last) holding serialized `Record`s; wandb 0.31 ships no Python reader for it.
    """
    data = next(run_dir.glob("run-*.wandb")).read_bytes()
    block, pos, pending, config = 32768, 7, b"", {}
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little room left for a chunk header: the block is padded
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending = (pending if kind in (3, 4) else b"") + data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record.FromString(pending)
            if record.WhichOneof("record_type") == "config":
                config.update({item.key: json.loads(item.value_json) for item in record.config.update})
    return config


@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_each_sweeps_proposals_render_into_commands_coa_parses(path, small_world, small_model_dir, tmp_path,
                                                                monkeypatch):
    sweep = yaml.safe_load(path.read_text())
    assert sweeps.schema_violations_from_proposed_config(sweep) == []
    stage = Path(sweep["command"][sweep["command"].index("--config") + 1]).stem
    in_a_checkout(tmp_path, monkeypatch)
    print(f"\n{path.name} ({sweep['method']}):")
    for i, args in enumerate(proposals(sweep)):
        command = agent_command(sweep, args, f"local{i}", monkeypatch, tmp_path)
        print(f"  {shown(values(args))}\n    {' '.join(command)}")
        assert command[:3] == ["/usr/bin/env", "coa", "fit"]  # `coa fit`, W&B's `${args}` at the end
        assert command[-len(args):] == [f"--{name}={value}" for name, value in values(args).items()]
        cli = run_lightning_cli(command[3:] + stage_args(small_world, small_model_dir, stage), run=False)
        parsed = cli.config.as_dict()
        assert {name: at(parsed, name) for name in args} == values(args)
        assert cli.trainer.default_root_dir == f"runs/sweeps/{stage}/local{i}"  # a folder per W&B run


def test_the_sft2_sweep_runs_with_its_values_in_each_wandb_run_config(small_world, small_model_dir, tmp_path,
                                                                       monkeypatch):
    sweep = yaml.safe_load((ROOT / "configs" / "sweeps" / "sft2.yaml").read_text())
    in_a_checkout(tmp_path, monkeypatch)
    # the agent's environment, less its parameter file: the values must reach W&B through coa's parsed config
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # `coa` is the venv's
    env = {**os.environ, "WANDB_MODE": "offline", "PATH": path}
    sets = proposals(sweep)
    run_ids = [f"local{i}" for i in range(RUNS)]
    commands = [agent_command(sweep, args, run_id, monkeypatch, tmp_path) for args, run_id in zip(sets, run_ids)]
    tiny = ["--trainer.max_steps=2", "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
            "--model.init_args.warmup_steps=1", "--data.init_args.batch_size=2", "--torch_threads=1"]
    procs = [  # at once: a run is mostly start-up (imports, W&B), on one torch thread
        subprocess.Popen(command + stage_args(small_world, small_model_dir, "sft2") + tiny,
                         env={**env, "WANDB_RUN_ID": run_id},  # as the agent sets it: names the run and its folder
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for command, run_id in zip(commands, run_ids)
    ]
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    assert [p.returncode for p in procs] == [0] * RUNS, "\n".join(e[-3000:] for e in errors)

    print()
    for i, (args, command, run_id) in enumerate(zip(sets, commands, run_ids), 1):
        run_dir = next(Path(f"runs/sweeps/sft2/{run_id}/wandb").glob(f"offline-run-*-{run_id}"))
        config = wandb_run_config(run_dir)
        found = {name: at(config, name) for name in args}
        print(f"sft2 sweep, run {i} of {RUNS}")
        print(f"  proposed:   {shown(values(args))}")
        print(f"  command:    {' '.join(command)}")
        print(f"  W&B config: {shown(found)}")
        lora = "model.init_args.policy.init_args.lora"
        print(f"              {lora}: {at(config, lora)}")
        print(f"              ({run_dir})")
        assert found == values(args)


def test_a_list_item_is_named_by_its_position_and_a_bad_one_says_so(small_world, small_model_dir, tmp_path):
    args = ["--config", str(ROOT / "configs" / "rl2.yaml"), f"--trainer.default_root_dir={tmp_path}",
            *stage_args(small_world, small_model_dir, "rl2")]
    cli = run_lightning_cli(args + ["--trainer.callbacks.0.init_args.group_size", "3",
                                    "--trainer.callbacks.init_args.every_n_train_steps=7"], run=False)
    assert (cli.trainer.callbacks[0].group_size, cli.trainer.checkpoint_callback._every_n_train_steps) == (3, 7)
    with pytest.raises(ConfigError, match=r"trainer.callbacks has 3 items; name one by its position, 0..2"):
        run_lightning_cli(args + ["--trainer.callbacks.3.init_args.group_size=3"], run=False)
    bad_type = r"^--trainer.callbacks.0.init_args.group_size=three: .*RolloutCallback.*group_size"
    with pytest.raises(ConfigError, match=bad_type):
        run_lightning_cli(args + ["--trainer.callbacks.0.init_args.group_size=three"], run=False)
