"""Runs one `coa fit` for the pipeline: in this process (fast) or in a child process (memory freed after it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


class StageFailed(RuntimeError):
    """A stage's `coa fit` ended without finishing its steps; a rerun resumes it from its last checkpoint."""


def fit_inprocess(args: list[str]) -> None:
    """`coa fit ARGS` through LightningCLI here; raises StageFailed unless the trainer finished."""
    import wandb

    from coa.lightning_cli import run_lightning_cli

    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI gets its arguments from `args`, not our command line
    try:
        cli = run_lightning_cli(["fit", *args])
    finally:
        sys.argv = argv
        wandb.finish()  # one W&B run per stage
    status = cli.trainer.state.status.value
    if status != "finished":
        raise StageFailed(f"coa fit ended {status} at step {cli.trainer.global_step}")


def fit_subprocess(args: list[str]) -> None:
    """`python -m coa.cli fit ARGS` in a child process that prints to our terminal (and, on Linux, ends with us)."""
    # its own W&B service: one this process started (and may have stopped) is no place for the stage's run
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    code = subprocess.call([sys.executable, "-m", "coa.cli", "fit", *args], preexec_fn=_end_with_parent, env=env)
    if code != 0:
        raise StageFailed(f"coa fit exited with code {code} (its output is above)")


def _end_with_parent() -> None:
    """In the child: SIGTERM when the pipeline dies, even by SIGKILL, so no stage trains on unwatched (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


LAUNCH = {"inprocess": fit_inprocess, "subprocess": fit_subprocess}
