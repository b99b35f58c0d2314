"""SFT stages 2 and 3: next-token loss on the policy's own tokens (stage 2) or on every token (stage 3)."""

from __future__ import annotations

import time

from torch import Tensor

from coa.data.batch import SFTBatch
from coa.data.packing import check_packing_isolates
from coa.distributed import global_mean_factor
from coa.modules.stage import PolicyStage
from coa.policy import Policy


class SFTModule(PolicyStage):
    """Supervised fine-tuning of the shared policy; which tokens count is the datamodule's loss mask.

    Args:
        policy: the backbone (model + tokenizer) shared by every stage.
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up, then cosine decay to 10 % at `trainer.max_steps`.
        export_dir: where the trained policy is written as a Hugging Face directory when fit ends
            (the next stage's `model_name_or_path`); None writes nothing.
    """

    def __init__(
        self,
        policy: Policy,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        export_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["policy"])
        self.policy = policy
        self._tick: float | None = None

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and datamodule.hparams.get("pack"):  # before any strategy wraps the model
            check_packing_isolates(self.policy.model, len(self.policy.tokenizer))

    def loss(self, batch: SFTBatch) -> Tensor:
        """Mean next-token NLL over the batch's target tokens (the output layer runs on those alone); weighted by
        the loss mask where it holds weights (`SFTBatch.loss_mask`)."""
        targets = batch.loss_mask[:, 1:] * batch.attention_mask[:, 1:]
        logprobs = self.policy.target_logprobs(
            batch.input_ids, batch.attention_mask, targets, position_ids=batch.position_ids
        )
        if not targets.is_floating_point():
            return -logprobs.mean()
        weights = targets[targets > 0]
        return -(logprobs * weights).sum() / weights.sum()

    def training_step(self, batch: SFTBatch, batch_idx: int) -> Tensor:
        tokens = (batch.loss_mask[:, 1:] * batch.attention_mask[:, 1:]).sum()  # weighted, where the mask weighs
        # under DDP: this process's share of the mean over the global batch's tokens (1 on one process)
        loss = self.loss(batch) * global_mean_factor(tokens).to(self.device)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        self.log("train/loss_tokens", tokens.float(), sync_dist=True, reduce_fx="sum")
        now = time.perf_counter()
        if self._tick is not None:  # all processes together
            tokens_per_s = batch.attention_mask.sum().float() / (now - self._tick)
            self.log("perf/tokens_per_s", tokens_per_s, prog_bar=True, sync_dist=True, reduce_fx="sum")
        self._tick = now
        return loss

    def validation_step(self, batch: SFTBatch, batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=batch.input_ids.shape[0], sync_dist=True)
        return loss
