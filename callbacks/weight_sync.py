"""Pushes the policy's weights into every rollout engine after each optimizer step (vLLM holds its own copy)."""

from __future__ import annotations

import lightning as L

from coa.callbacks.rollout import RolloutCallback


class WeightSync(L.Callback):
    """After every `every_n_steps` optimizer steps, `engine.sync_weights(policy)` for each RolloutCallback's engine.

    The HF engine shares the policy's weights (a no-op); vLLM gets the new weights (LoRA merged) so the
    next rollouts are on-policy. RolloutCallback also syncs before generating when a step was missed.

    Args:
        every_n_steps: optimizer steps between pushes.
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        if every_n_steps < 1:
            raise ValueError(f"WeightSync.every_n_steps={every_n_steps} must be >= 1")
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        for callback in trainer.callbacks:
            if isinstance(callback, RolloutCallback):
                callback.sync_weights(pl_module.policy, trainer.global_step)
