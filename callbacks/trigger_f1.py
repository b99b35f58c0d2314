"""Logs trigger precision/recall/F1 (does the policy search when it should?) after each validation pass."""

from __future__ import annotations

import lightning as L

from coa.data.cota_pairs import ContrastivePair, read_cota_pairs
from coa.rollout.engines.hf import HFEngine
from coa.prompts import PromptTemplate
from coa.trigger_eval import fixed_subset, trigger_eval


class TriggerF1(L.Callback):
    """Greedy continuations of a fixed subset of held-out decision points -> val/trigger_{precision,recall,f1}.

    Runs at the end of every validation pass except the sanity check, on the module's `policy`.

    Args:
        pairs_path: CoT+A pair file of held-out decision points (e.g. the world's pairs/dev.json).
        num_points: size of the fixed subset (drawn once with `seed`).
        max_new_tokens: continuation budget per point.
        prompt: None keeps each pair's prompt; a template name or text rebuilds it (match the datamodule's).
        batch_size: prompts per generate call.
        seed: draws the subset.
    """

    def __init__(
        self,
        pairs_path: str,
        num_points: int = 64,
        max_new_tokens: int = 24,
        prompt: str | None = None,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        if num_points < 1:
            raise ValueError(f"TriggerF1.num_points={num_points} must be >= 1")
        self.pairs_path = pairs_path
        self.num_points = num_points
        self.max_new_tokens = max_new_tokens
        self.template = PromptTemplate(prompt) if prompt is not None else None
        self.batch_size = batch_size
        self.seed = seed
        self.points: list[ContrastivePair] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self.points:  # read at setup, so a bad file fails before training starts
            self.points = fixed_subset(read_cota_pairs(self.pairs_path), self.num_points, self.seed)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        policy = pl_module.policy
        engine = HFEngine(policy.model, policy.tokenizer, batch_size=self.batch_size)
        scores = trigger_eval(engine, policy.tokenizer, self.points, self.template, self.max_new_tokens)
        for name in ("precision", "recall", "f1"):
            pl_module.log(f"val/trigger_{name}", getattr(scores, name))
