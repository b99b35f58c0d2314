"""What every stage that trains the shared policy does alike: optimiser, schedule, train mode, export."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import lightning as L
import torch

from coa.policy import Policy
from coa.schedules import warmup_cosine


class PolicyStage(L.LightningModule):
    """Base of the SFT stages: subclasses set `self.policy` and save `lr`, `weight_decay`, `warmup_steps`
    and `export_dir` as hyperparameters; this class trains and exports the policy with them."""

    policy: Policy

    def on_fit_start(self) -> None:
        self.policy.model.train()  # from_pretrained returns the model in eval mode (dropout off)

    def configure_optimizers(self):
        return adamw_warmup_cosine(
            self.policy, self.hparams.lr, self.hparams.weight_decay, self.hparams.warmup_steps, self.trainer.max_steps
        )

    def on_train_end(self) -> None:
        if self.hparams.export_dir and self.trainer.is_global_zero:
            export_policy(self.policy, Path(self.hparams.export_dir))


def adamw_warmup_cosine(policy: Policy, lr: float, weight_decay: float, warmup_steps: int, max_steps: int) -> dict:
    """AdamW on the policy's trainable weights with the `warmup_cosine` schedule per step (every SFT stage's)."""
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    total = max(1, max_steps) if max_steps > 0 else 10**9
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, warmup_steps, total))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def export_policy(policy: Policy, out: Path) -> None:
    """Writes the policy beside `out` and renames it into place, so a crash never leaves half a model."""
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
