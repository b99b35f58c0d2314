"""DDP on CPU (gloo, 2 processes) reproduces one process with the same global batch, for SFT (stages 1 and 2; stage 3
is stage 2's module) and GRPO, launched by `torchrun` and by Lightning's `fabric run`: the same per-step losses (and
rewards) and the same final weights.

Tolerance: 1e-4 relative on every logged value and 5e-5 absolute on every weight. The two runs differ only in
float rounding: DDP sums the two processes' gradients in another order, and each process pads its own batch.
Adam turns the rounding of a near-zero gradient into a step of up to ~lr, hence the weights' tolerance and the
small learning rates (measured: SFT 2e-7, GRPO 9e-6 at lr 0.005; at lr 0.03 GRPO's weights differed by 1.2e-4).
Without the global-batch mean (each process averaging over its own tokens) SFT's losses drift apart: by 6e-3
(1e-3 relative) at step 6, and the test fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from rl_runs import logged, rl_args, rl_config

ROOT = Path(__file__).resolve().parents[2]
RTOL, WEIGHT_ATOL = 1e-4, 5e-5
DDP = ["--config", str(ROOT / "configs" / "strategies" / "ddp_cpu.yaml")]  # what the README tells users to add


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher(name: str) -> list[str]:
    """The command prefix that starts `coa` on 2 CPU processes (as a user types it, with a free port)."""
    bin_dir = Path(sys.executable).parent
    port = str(free_port())
    if name == "torchrun":
        return [str(bin_dir / "torchrun"), "--nproc_per_node=2", f"--master_port={port}", "-m", "coa.cli"]
    coa = shutil.which("coa", path=str(bin_dir)) or shutil.which("coa")
    return [str(bin_dir / "fabric"), "run", "--accelerator=cpu", "--devices=2", "--strategy=ddp", f"--main-port={port}", coa]


def run(command: list[str], cwd: Path) -> None:
    """Runs it in `cwd`, where a test's own modules (a reward) are importable."""
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": os.pathsep.join([str(ROOT), str(cwd), os.environ.get("PYTHONPATH", "")])}
    print("$", " ".join(command))
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(model_dir).state_dict()


def assert_same_run(one: Path, two: Path, metrics: list[str]) -> None:
    for name in metrics:
        single, ddp = logged(one, name), logged(two, name)
        print(f"{name}: 1 process {[round(v, 6) for v in single]}, 2 processes {[round(v, 6) for v in ddp]}")
        assert len(single) == len(ddp) > 0
        torch.testing.assert_close(torch.tensor(ddp), torch.tensor(single), rtol=RTOL, atol=1e-7)
    a, b = weights(one / "model"), weights(two / "model")
    gap = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"largest weight difference: {gap:.2e}")
    assert gap <= WEIGHT_ATOL


def sft_args(sft_fit_args, world: Path, model_dir: Path, root: Path, batch_size: int) -> list[str]:
    return sft_fit_args(world, model_dir, root, max_steps=6) + [
        f"--data.init_args.batch_size={batch_size}",
        "--trainer.val_check_interval=100", "--trainer.limit_val_batches=0",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.init_args.save_dir={root}",
        f"--model.init_args.export_dir={root / 'model'}", "--torch_threads=1",
    ]


@pytest.mark.parametrize("launch", ["torchrun", "fabric"])
def test_sft_on_two_processes_equals_one_with_the_same_global_batch(small_world, small_model_dir, sft_fit_args, tmp_path, launch):
    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, "-m", "coa.cli", *sft_args(sft_fit_args, small_world, small_model_dir, one, 8)], tmp_path)
    run([*launcher(launch), *sft_args(sft_fit_args, small_world, small_model_dir, two, 4), *DDP], tmp_path)
    assert_same_run(one, two, ["train/loss", "train/loss_tokens"])


def sft1_args(world: Path, model_dir: Path, root: Path, batch_size: int) -> list[str]:
    """SFT stage 1 (the contrastive "when to act" loss on CoT+A pairs), 4 steps, no validation."""
    return [
        "fit", "--config", str(ROOT / "configs" / "sft1.yaml"), f"--trainer.default_root_dir={root}",
        "--trainer.max_steps=4", "--trainer.val_check_interval=100", "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false", f"--model.init_args.policy.init_args.model_name_or_path={model_dir}",
        "--model.init_args.warmup_steps=1", f"--data.init_args.train_path={world / 'pairs' / 'train.json'}",
        f"--data.init_args.val_path={world / 'pairs' / 'dev.json'}", f"--data.init_args.batch_size={batch_size}",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.init_args.save_dir={root}",
        f"--model.init_args.export_dir={root / 'model'}", "--torch_threads=1",
    ]


def test_sft1_on_two_processes_equals_one_with_the_same_global_batch(small_world, small_model_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, "-m", "coa.cli", *sft1_args(small_world, small_model_dir, one, 4)], tmp_path)
    run([*launcher("torchrun"), *sft1_args(small_world, small_model_dir, two, 2), *DDP], tmp_path)
    assert_same_run(one, two, ["train/loss", "train/loss_contrastive", "train/loss_nll"])


def test_grpo_on_two_processes_equals_one_with_the_same_global_batch(small_world, small_model_dir, tmp_path, reward_on_path):
    reward, _ = reward_on_path  # a reward the random model earns some of, so the weights move
    config = rl_config(tmp_path, reward=reward, group_size=4)
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--model.init_args.lr=0.005", "--torch_threads=1"]
    run([sys.executable, "-m", "coa.cli", *rl_args(config, small_world, small_model_dir, one, 4), *common,
         "--data.init_args.batch_size=4"], tmp_path)
    run([*launcher("torchrun"), *rl_args(config, small_world, small_model_dir, two, 4), *common,
         "--data.init_args.batch_size=2", *DDP], tmp_path)
    assert_same_run(one, two, ["rollout/reward_mean", "rollout/response_tokens", "train/loss", "train/kl", "rollout/real_calls"])
    assert logged(one, "rollout/reward_std")[0] > 0  # the advantages are not all zero: the runs learn


def test_grpo_refuses_a_sharded_strategy_saying_what_to_use():
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    from coa.modules.grpo import refuse_sharded_strategy

    with pytest.raises(ValueError, match="use strategy: ddp"):
        refuse_sharded_strategy(FSDPStrategy())
    with pytest.raises(ValueError, match="use strategy: ddp"):  # DeepSpeedStrategy() itself needs deepspeed installed
        refuse_sharded_strategy(type("DeepSpeedStrategy", (DDPStrategy,), {})())
    refuse_sharded_strategy(DDPStrategy())  # no error
