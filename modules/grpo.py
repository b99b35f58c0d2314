"""RL stages 1 and 2: GRPO on the shared policy. Rollouts come from `coa.callbacks.rollout.RolloutCallback`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch
from torch import Tensor

from coa.distributed import global_mean_factor
from coa.losses.grpo import AGGREGATIONS, grpo_token_loss, group_advantages, token_weights
from coa.modules.stage import PolicyStage, adamw_scheduled
from coa.modules.step_metrics import log_step_metrics
from coa.policy import Policy
from coa.rollout.batch import RolloutBatch
from coa.schedules import warmup_constant
from coa.shared_prefix import PromptGroups

LR_SCHEDULES = ("cosine", "constant")


class GRPOModule(PolicyStage):
    """GRPO: group-relative advantages, PPO-clipped ratio, k3 KL to the reference; observation tokens get no loss.

    Each training step takes the rollout batch the RolloutCallback produced for it (groups of
    `group_size` episodes per prompt, generated with the current weights) and makes
    `updates_per_batch` optimizer steps on it (μ in the GRPO paper); `trainer.max_steps` counts those.

    Args:
        policy: the backbone (model + tokenizer) shared by every stage.
        lr: peak learning rate (AdamW). Paper: 7e-7 for a 7B model.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        lr_schedule: after the warm-up, "cosine" (decay to 10 % at `trainer.max_steps`) or "constant" (AutoCoA's
            release: verl's `warmup_style: constant`).
        clip_eps: ε of the clipped ratio.
        kl_coef: β of the KL term (0 skips the reference pass). Paper: 0.001.
        kl_clamp: the per-token k3 KL estimate is clamped to [-kl_clamp, kl_clamp] (verl's `low_var_kl`, the
            release's, clamps at 10); null leaves it unclamped.
        entropy_coef: weight of an entropy bonus (loss - entropy_coef * entropy of the policy at its own tokens,
            with gradient); 0 leaves it out (and computes the entropy for the log only). Release: 0.001.
        scale_advantages: divide advantages by the group's reward std (GRPO's original form, verl's and the
            release's); False keeps reward - group mean (Dr. GRPO).
        loss_aggregation: "token_mean" (every token weighs the same) or "sequence_mean" (every sequence).
        updates_per_batch: optimizer steps per rollout batch (μ); the ratio is 1 at the first.
        micro_batch_size: sequences per forward/backward (gradients accumulate); None takes the whole batch.
        max_grad_norm: gradient clipping (manual optimisation: the trainer's gradient_clip_val cannot be used).
        offload_reference: keep the full fine-tuning reference in CPU memory except for its pass (a 7B model on
            one 80 GB GPU needs it: docs/gpu_memory.md); no effect with LoRA, whose reference is the base itself.
        export_dir: where the trained policy is written as a Hugging Face directory when fit ends.
        share_prompt: run each group's prompt once per forward pass and every completion of the group on its
            KV cache (`coa.shared_prefix`), in the update, old and reference passes; the log-probs are those
            of the whole rows. It applies where a micro-batch holds whole groups (`micro_batch_size` a
            multiple of the group size, or null), the group's rows share the prompt ids and the model keeps
            a cache (not with gradient checkpointing in the update); elsewhere the whole rows are run.
    """

    def __init__(
        self,
        policy: Policy,
        lr: float = 1e-6,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        lr_schedule: str = "cosine",
        clip_eps: float = 0.2,
        kl_coef: float = 0.001,
        kl_clamp: float | None = 10.0,
        entropy_coef: float = 0.0,
        scale_advantages: bool = True,
        loss_aggregation: str = "token_mean",
        updates_per_batch: int = 1,
        micro_batch_size: int | None = None,
        max_grad_norm: float | None = 1.0,
        export_dir: str | None = None,
        share_prompt: bool = True,
        offload_reference: bool = False,
    ) -> None:
        super().__init__()
        if loss_aggregation not in AGGREGATIONS:
            raise ValueError(f"model.loss_aggregation={loss_aggregation!r} must be one of {AGGREGATIONS}")
        if updates_per_batch < 1:
            raise ValueError(f"model.updates_per_batch={updates_per_batch} must be >= 1")
        if micro_batch_size is not None and micro_batch_size < 1:
            raise ValueError(f"model.micro_batch_size={micro_batch_size} must be >= 1 or null")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"model.lr_schedule={lr_schedule!r} must be one of {LR_SCHEDULES}")
        if kl_clamp is not None and kl_clamp <= 0:
            raise ValueError(f"model.kl_clamp={kl_clamp} must be positive, or null for no clamp")
        self.save_hyperparameters(ignore=["policy"])
        self.policy = policy
        self.automatic_optimization = False
        self.rollouts: RolloutBatch | None = None  # set by the RolloutCallback before each step

    def setup(self, stage: str) -> None:
        super().setup(stage)
        refuse_sharded_strategy(self.trainer.strategy)

    @property
    def updates_per_batch(self) -> int:
        return self.hparams.updates_per_batch

    def configure_optimizers(self):
        if self.hparams.lr_schedule == "cosine":
            return super().configure_optimizers()
        h = self.hparams
        return adamw_scheduled(self.policy, h.lr, h.weight_decay, lambda step: warmup_constant(step, h.warmup_steps))

    def training_step(self, batch, batch_idx: int) -> Tensor:
        if self.rollouts is None:
            raise RuntimeError(
                "GRPOModule got no rollouts: add coa.callbacks.rollout.RolloutCallback to trainer.callbacks"
            )
        rollouts, self.rollouts = self.rollouts.to(self.device), None
        start = time.perf_counter()
        targets = rollouts.loss_mask[:, 1:] * rollouts.attention_mask[:, 1:]
        seq_index = torch.nonzero(targets)[:, 0]
        advantages = group_advantages(rollouts.rewards, rollouts.group_size, self.hparams.scale_advantages)
        weights = token_weights(seq_index, rollouts.input_ids.shape[0], self.hparams.loss_aggregation)
        # under DDP: this process's share of the global batch's mean (1 on one process)
        averaged_over = seq_index.numel() if self.hparams.loss_aggregation == "token_mean" else rollouts.input_ids.shape[0]
        weights = weights * global_mean_factor(averaged_over).to(weights.device)
        old = self._old_logprobs(rollouts) if self.hparams.updates_per_batch > 1 else None
        ref = self._reference_logprobs(rollouts) if self.hparams.kl_coef > 0 else None
        if self.hparams.offload_reference:
            self.policy.offload_reference()
        for _ in range(self.hparams.updates_per_batch):
            stats = self._update(rollouts, advantages, weights, old, ref)
        tokens = rollouts.attention_mask.sum().float() * self.hparams.updates_per_batch
        self._log_step(stats, advantages, tokens / (time.perf_counter() - start))
        return stats["loss"]

    def _update(self, rollouts: RolloutBatch, advantages: Tensor, weights: Tensor, old, ref) -> dict[str, Tensor]:
        """One optimizer step over the batch in micro-batches; returns the step's loss and statistics."""
        optimizer, schedule = self.optimizers(), self.lr_schedulers()
        optimizer.zero_grad()
        totals: dict[str, Tensor] = {}
        h = self.hparams
        for start, mb, targets, tokens in self._micro_batches(rollouts):
            logp, entropy = self.policy.target_logprobs_and_entropy(
                mb.input_ids, mb.attention_mask, targets, rollouts.temperature, self._prompt_groups(mb),
                entropy_grad=h.entropy_coef > 0,
            )
            rows = torch.nonzero(targets)[:, 0] + start
            out = grpo_token_loss(
                logp, logp.detach() if old is None else old[tokens], advantages[rows],
                None if ref is None else ref[tokens], h.clip_eps, h.kl_coef, h.kl_clamp, entropy, h.entropy_coef,
            )
            w = weights[tokens]
            loss = (w * out.loss).sum()
            self.manual_backward(loss)
            for name, value in (("loss", loss.detach()), ("kl", (w * out.kl).sum()),
                                ("clip_fraction", (w * out.clipped.float()).sum()),
                                ("entropy", (w * entropy.detach()).sum())):
                totals[name] = totals.get(name, 0.0) + value
        if h.max_grad_norm:
            self.clip_gradients(optimizer, gradient_clip_val=h.max_grad_norm, gradient_clip_algorithm="norm")
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)  # the gradients' memory goes back before the weight sync and rollouts
        return totals

    def _old_logprobs(self, rollouts: RolloutBatch) -> Tensor:
        with torch.inference_mode():  # less per-operation bookkeeping than no_grad; cloned out for the loss
            return self._flat(rollouts, self.policy.target_logprobs).clone()

    def _reference_logprobs(self, rollouts: RolloutBatch) -> Tensor:
        return self._flat(rollouts, self.policy.reference_target_logprobs)

    def _flat(self, rollouts: RolloutBatch, logprobs_of) -> Tensor:
        """[M] log-probs of every loss token of the batch, computed micro-batch by micro-batch."""
        parts = [
            logprobs_of(mb.input_ids, mb.attention_mask, targets, rollouts.temperature, self._prompt_groups(mb))
            for _, mb, targets, _ in self._micro_batches(rollouts)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, device=self.device)

    def _micro_batches(self, rollouts: RolloutBatch) -> Iterator[tuple[int, RolloutBatch, Tensor, slice]]:
        """(first row, micro-batch, its [b, t-1] target mask, its tokens' slice of the flat [M] tensors) for each
        micro-batch that has loss tokens."""
        size = self.hparams.micro_batch_size or rollouts.input_ids.shape[0]
        offset = 0
        for start in range(0, rollouts.input_ids.shape[0], size):
            mb = rollouts.select(slice(start, start + size))
            targets = mb.loss_mask[:, 1:] * mb.attention_mask[:, 1:]
            n = int(targets.sum())
            if n:
                yield start, mb, targets, slice(offset, offset + n)
                offset += n

    def _prompt_groups(self, mb: RolloutBatch) -> PromptGroups | None:
        """The micro-batch's groups for the shared-prompt passes, or None where they cannot be used."""
        size = self.hparams.micro_batch_size
        whole_groups = size is None or size % mb.group_size == 0
        if not self.hparams.share_prompt or mb.prompt_lengths is None or mb.group_size < 2 or not whole_groups:
            return None
        return PromptGroups(mb.prompt_lengths, mb.group_size)

    def _log_step(self, stats: dict[str, Tensor], advantages: Tensor, train_tokens_per_s: Tensor) -> None:
        """Every value is this process's share of the global batch's: the mean over processes is the global one."""
        metrics = {"train/loss": stats.get("loss", torch.tensor(0.0))}
        metrics.update({f"train/{name}": stats[name] for name in ("kl", "clip_fraction", "entropy") if name in stats})
        metrics["train/advantage_abs_mean"] = advantages.abs().mean()
        metrics["train/lr"] = self.optimizers().param_groups[0]["lr"]  # the same everywhere: its mean is itself
        metrics["perf/train_tokens_per_s"] = train_tokens_per_s
        log_step_metrics(self, metrics, summed=["perf/train_tokens_per_s"], prog_bar=["train/loss"])


def refuse_sharded_strategy(strategy) -> None:
    """GRPO generates with the whole policy on every process and clips and steps its own optimizer: DDP only."""
    name = type(strategy).__name__
    if name.startswith(("FSDP", "DeepSpeed", "ModelParallel")):
        raise ValueError(
            f"trainer.strategy={name}: GRPOModule needs every process to hold the whole policy to generate its rollouts "
            "(and steps its own optimizer); use strategy: ddp (configs/strategies/ddp_gpu.yaml). FSDP and DeepSpeed "
            "serve the SFT stages (configs/strategies/fsdp.yaml, deepspeed_zero2.yaml)"
        )
