"""Pushes the policy's weights into every rollout engine that keeps its own copy (vLLM) after optimizer steps."""

from __future__ import annotations

import lightning as L

from coa.callbacks.rollout import RolloutCallback


class WeightSync(L.Callback):
    """Once at least `every_n_steps` optimizer steps were taken since a RolloutCallback's engine last got the
    weights, `engine.sync_weights(policy)` (after the step, before the next rollouts).

    This is the one place that decides when weights are pushed; the RolloutCallback pushes them itself only
    once, before its first rollouts of a fit (its engine starts from the weights on disk). The HF engine shares
    the policy's weights (a no-op); vLLM gets the new weights (LoRA merged into copies) so the next rollouts
    are on-policy. With `every_n_steps` above 1 the rollouts between pushes come from older weights (the
    importance ratio is then taken against the current policy, not the one that sampled).

    Args:
        every_n_steps: optimizer steps between pushes.
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        if every_n_steps < 1:
            raise ValueError(f"WeightSync.every_n_steps={every_n_steps} must be >= 1")
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        for callback in trainer.callbacks:
            if isinstance(callback, RolloutCallback) and self._due(callback.synced_step, trainer.global_step):
                callback.sync_weights(pl_module.policy, trainer.global_step)

    def _due(self, synced_step: int | None, step: int) -> bool:
        return synced_step is None or step - synced_step >= self.every_n_steps
