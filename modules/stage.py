"""What every stage that trains the shared policy does alike: optimiser, schedule, train mode, checkpoints, export."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from coa.models.agent_card import AgentCard, card_for, read_card, write_card
from coa.models.loading import check_same_tokenizer
from coa.policy import Policy
from coa.schedules import warmup_cosine


class PolicyStage(L.LightningModule):
    """Base of the policy-training stages: subclasses set `self.policy` and save `lr`, `weight_decay`,
    `warmup_steps` and `export_dir` as hyperparameters; this class trains, checkpoints and exports the policy.

    Checkpoints of a LoRA policy hold the weights that train (the adapters), not the frozen base, which
    comes back from `policy.model_name_or_path` (optimizer, schedule and loop state are Lightning's, as ever).
    """

    policy: Policy

    @property
    def strict_loading(self) -> bool:
        """Lightning's `load_state_dict(strict=...)`: a LoRA checkpoint fills the adapters alone."""
        return self.policy.lora is None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.policy.lora is not None:
            checkpoint["state_dict"] = trainable_state(self, checkpoint["state_dict"])

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_holds_trainable(self, checkpoint["state_dict"], getattr(self._trainer, "ckpt_path", None))

    def setup(self, stage: str) -> None:
        data_tokenizer = getattr(getattr(self.trainer, "datamodule", None), "tokenizer", None)
        if data_tokenizer is not None:
            check_same_tokenizer(self.policy.tokenizer, data_tokenizer)

    def on_fit_start(self) -> None:
        self.policy.model.train()  # from_pretrained returns the model in eval mode (dropout off)

    def configure_optimizers(self):
        return adamw_warmup_cosine(
            self.policy, self.hparams.lr, self.hparams.weight_decay, self.hparams.warmup_steps, self.trainer.max_steps,
            mixed_precision="mixed" in str(getattr(self.trainer, "precision", "")),
        )

    def on_train_end(self) -> None:
        if not self.hparams.export_dir:
            return
        with full_weights(self.trainer.strategy):  # every process enters: FSDP gathers the shards onto rank 0
            if self.trainer.is_global_zero:
                export_policy(self.policy, Path(self.hparams.export_dir), self.agent_card())

    def agent_card(self) -> AgentCard | None:
        """How the exported model acts (`stage_card` with this run's datamodule)."""
        return stage_card(self.policy, getattr(self.trainer, "datamodule", None))


def stage_card(policy: Policy, datamodule: Any | None) -> AgentCard | None:
    """How a stage's exported model acts: the datamodule's prompt (else the starting model's), the starting model's
    tags; None where neither says (pretraining a model that was no agent on plain texts keeps it none)."""
    start = read_card(policy.model_name_or_path)
    template = getattr(datamodule, "template", None)
    prompt = template.instruction if template is not None else None
    if prompt is None and start is None and datamodule is not None and not hasattr(datamodule, "template"):
        return None
    if prompt is None:
        prompt = start.prompt if start else "autocoa"
    return card_for(prompt, start.tags()) if start else card_for(prompt)


def trainable_names(module: torch.nn.Module) -> list[str]:
    """Names (as in `state_dict`) of the parameters that train."""
    return [name for name, p in module.named_parameters() if p.requires_grad]


def trainable_state(module: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of `state_dict` that are `module`'s trainable parameters, in their order."""
    keep = set(trainable_names(module))
    return {name: value for name, value in state_dict.items() if name in keep}


def check_holds_trainable(module: PolicyStage, state_dict: dict[str, torch.Tensor], path: str | None) -> None:
    """Raises a ValueError when a checkpoint lacks weights the policy trains (written with other LoRA settings)."""
    names = trainable_names(module)
    missing = [name for name in names if name not in state_dict]
    if missing:
        raise ValueError(
            f"checkpoint {path or ''} lacks {len(missing)} of the {len(names)} weights this policy trains "
            f"(policy.lora={module.policy.lora}; e.g. {missing[0]}): it was written with other policy.lora settings; "
            "resume with the settings it was trained with, or start afresh without --ckpt_path"
        )


def adamw_warmup_cosine(
    policy: Policy, lr: float, weight_decay: float, warmup_steps: int, max_steps: int, mixed_precision: bool = False
) -> dict:
    """AdamW on the policy's trainable weights with the `warmup_cosine` schedule per step (every SFT stage's)."""
    total = max(1, max_steps) if max_steps > 0 else 10**9
    return adamw_scheduled(
        policy, lr, weight_decay, lambda step: warmup_cosine(step, warmup_steps, total), mixed_precision
    )


def adamw_scheduled(
    policy: Policy, lr: float, weight_decay: float, multiplier: Callable[[int], float], mixed_precision: bool = False
) -> dict:
    """AdamW on the policy's trainable weights, the rate `lr * multiplier(step)` at each optimizer step.

    Not fused under mixed precision (`trainer.precision: bf16-mixed`): Lightning's mixed-precision plugin refuses
    gradient clipping with a fused optimizer."""
    params = [p for p in policy.parameters() if p.requires_grad]
    fused = fused_adamw_fits(params) and not mixed_precision
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def fused_adamw_fits(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW (one kernel over every tensor) can take these weights: floating point, on a CPU
    or a CUDA device. On a CPU it takes 0.4 ms per step instead of 1.5 ms on a 0.66 M model."""
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def load_stage_checkpoint(module: PolicyStage, path: str | Path) -> None:
    """Puts the weights of a Lightning checkpoint of this stage into `module` (a LoRA run's: the adapters alone,
    onto the base at `policy.model_name_or_path`); optimizer and loop state are left out.

    Raises a ValueError where the checkpoint and the policy's LoRA settings differ either way (an adapter left
    out would be lost from the export without a word).
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)  # Lightning's own format (not only tensors)
    check_holds_trainable(module, checkpoint["state_dict"], str(path))
    unexpected = module.load_state_dict(checkpoint["state_dict"], strict=module.strict_loading).unexpected_keys
    if unexpected:
        raise ValueError(
            f"checkpoint {path} holds {len(unexpected)} weights this policy lacks (policy.lora={module.policy.lora}; "
            f"e.g. {unexpected[0]}): it was written with other policy.lora settings; "
            "use the settings it was trained with"
        )


def full_weights(strategy: Any) -> contextlib.AbstractContextManager:
    """Whole (unsharded) weights on rank 0 inside it under FSDP (`summon_full_params`; written for GPUs, not run
    here); nothing to do under DDP or one process."""
    from lightning.pytorch.strategies import FSDPStrategy

    if not isinstance(strategy, FSDPStrategy):
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel.summon_full_params(strategy.model, writeback=False, rank0_only=True, offload_to_cpu=True)


def export_policy(policy: Policy, out: Path, card: AgentCard | None = None) -> None:
    """Writes the policy (and how it acts: `coa_agent.json`) beside `out` and renames it into place, so a crash
    never leaves half a model. With LoRA: the merged model, and the adapter alone in `out/adapter`
    (`Policy.save_pretrained`)."""
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp)
    if card is not None:
        write_card(tmp, card)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
