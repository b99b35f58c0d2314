"""A training step's scalar metrics, written to the trainer's loggers in one piece.

Lightning's `self.log` keeps a torchmetrics state per key and moves, updates and reduces it on every call:
~0.5 ms per value on a CPU. A GRPO step logs ~20 values, ~10 ms, 6 % of a small model's step
(`bench/grpo_step.py`). Here the values go through one all-reduce and one `log_metrics` call per logger, at
the step Lightning's own step metrics use; they also land in `trainer.callback_metrics`, so ModelCheckpoint
and EarlyStopping can monitor them. Values meant for the progress bar still go through `self.log`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import lightning as L
import torch
from torch import Tensor


def log_step_metrics(
    module: L.LightningModule, metrics: Mapping[str, float | Tensor], summed: Collection[str] = (),
    synced: bool = False, prog_bar: Collection[str] = (),
) -> None:
    """Logs `metrics` for the current training step.

    Args:
        module: the LightningModule being trained.
        metrics: name -> scalar; every process must pass the same names, in the same order.
        summed: names whose values add up over processes (counts, throughput); the others are averaged.
        synced: the values are already the same on every process: no reduction.
        prog_bar: names also shown in the progress bar (through `module.log`).
    """
    if not metrics:
        return
    values = _reduced(module, metrics, summed, synced)
    trainer = module.trainer
    for name in prog_bar:
        module.log(name, values[name], prog_bar=True)
    rest = {name: value for name, value in values.items() if name not in prog_bar}
    trainer.callback_metrics.update(rest)
    connector = trainer._logger_connector  # Lightning's own step and log_every_n_steps rule, as `self.log` uses them
    if connector.should_update_logs:
        connector.log_metrics(rest)


def _reduced(
    module: L.LightningModule, metrics: Mapping[str, float | Tensor], summed: Collection[str], synced: bool,
) -> dict[str, Tensor]:
    stacked = torch.stack([torch.as_tensor(v, dtype=torch.float32).detach().reshape(()).cpu() for v in metrics.values()])
    processes = module.trainer.world_size
    if processes > 1 and not synced:
        total = module.trainer.strategy.reduce(stacked.to(module.device), reduce_op="sum").cpu()
        divisor = torch.tensor([1.0 if name in summed else float(processes) for name in metrics])
        stacked = total / divisor
    return dict(zip(metrics, stacked.unbind()))
