"""SFT stage 1, "CoT+A": a contrastive loss teaches the shared policy *when* to act."""

from __future__ import annotations

from torch import Tensor

from coa.data.batch import SFTBatch
from coa.losses.trigger import TriggerLoss, sequence_means, trigger_loss
from coa.modules.stage import PolicyStage
from coa.policy import Policy


class TriggerModule(PolicyStage):
    """L = -log σ(β·(P(c) - P(r))) + α·(-P(c)) on CoT+A pairs; P is the continuation's mean token log-prob.

    A batch is [2B, T] (chosen rows first, see `coa.datamodules.sft1.collate_pairs`): one forward pass
    scores both sides. The prefix carries no loss (the datamodule's loss mask covers the continuation only).

    Args:
        policy: the backbone (model + tokenizer) shared by every stage.
        alpha: weight of the NLL term -P(chosen).
        beta: scale of the margin inside the sigmoid.
        reference: True takes margins relative to the reference policy (DPO-style; the weights as loaded,
            or the base model under LoRA).
        lr: peak learning rate (AdamW).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up, then cosine decay to 10 % at `trainer.max_steps`.
        export_dir: where the trained policy is written as a Hugging Face directory when fit ends
            (stage 2's `model_name_or_path`); None writes nothing.
    """

    def __init__(
        self,
        policy: Policy,
        alpha: float = 1.0,
        beta: float = 1.0,
        reference: bool = False,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        export_dir: str | None = None,
    ) -> None:
        super().__init__()
        if beta <= 0:
            raise ValueError(f"model.beta={beta} must be > 0 (it scales the margin; 1.0 is the paper's loss)")
        if alpha < 0:
            raise ValueError(f"model.alpha={alpha} must be >= 0 (0 drops the NLL term)")
        self.save_hyperparameters(ignore=["policy"])
        self.policy = policy

    def loss(self, batch: SFTBatch) -> TriggerLoss:
        """The trigger loss of a [2B, T] batch of chosen then rejected continuations."""
        if batch.input_ids.shape[0] % 2:
            raise ValueError(f"a trigger batch holds chosen then rejected rows; got an odd {batch.input_ids.shape[0]}")
        targets = batch.loss_mask[:, 1:] * batch.attention_mask[:, 1:]  # (2B, T-1)
        # The output layer runs on continuation tokens only; prefix positions get no log-prob at all.
        means = sequence_means(self.policy.target_logprobs(batch.input_ids, batch.attention_mask, targets), targets)
        half = means.shape[0] // 2
        ref_chosen = ref_rejected = None
        if self.hparams.reference:
            ref = self.policy.reference_logprobs(batch.input_ids, batch.attention_mask, batch.loss_mask).mean
            ref_chosen, ref_rejected = ref[:half], ref[half:]
        return trigger_loss(
            means[:half], means[half:], self.hparams.alpha, self.hparams.beta, ref_chosen, ref_rejected
        )

    def _log_parts(self, stage: str, out: TriggerLoss, pairs: int) -> None:
        on_step = stage == "train"
        self.log(f"{stage}/loss", out.loss, prog_bar=True, batch_size=pairs, on_step=on_step, on_epoch=not on_step,
                 sync_dist=True)
        for name, value in (
            ("loss_contrastive", out.contrastive), ("loss_nll", out.nll),
            ("pair_accuracy", out.accuracy), ("margin", out.margin),
        ):
            self.log(f"{stage}/{name}", value, batch_size=pairs, on_step=on_step, on_epoch=not on_step, sync_dist=True)

    def training_step(self, batch: SFTBatch, batch_idx: int) -> Tensor:
        out = self.loss(batch)
        self._log_parts("train", out, batch.input_ids.shape[0] // 2)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        return out.loss

    def validation_step(self, batch: SFTBatch, batch_idx: int) -> Tensor:
        out = self.loss(batch)
        self._log_parts("val", out, batch.input_ids.shape[0] // 2)
        return out.loss
