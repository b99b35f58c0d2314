"""Messages JSONL (AutoCoA CoA/CoT trajectories) -> padded, loss-masked batches for SFT stages 2 and 3."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from coa.data.batch import collate_examples
from coa.data.messages import Trajectory, read_messages
from coa.data.sampler import ResumableSampler
from coa.masking import TokenizedExample, tokenize_chat
from coa.prompts import PromptTemplate


class SFTDataModule(L.LightningDataModule):
    """Reads trajectories, rebuilds each prompt with `prompt`, masks the loss, batches with a resumable shuffle.

    Args:
        train_path: messages JSONL for training.
        val_path: messages JSONL for validation (optional).
        tokenizer_path: directory or hub id of the tokenizer (usually the policy's).
        batch_size: examples per batch.
        max_length: examples longer than this many tokens are left out (with a warning).
        prompt: instruction template ("autocoa", "short", or a text with `{question}`).
        mask_observations: True for stage 2 (observations get no loss), False for stage 3.
        seed: seeds the shuffle.
    """

    def __init__(
        self,
        train_path: str,
        val_path: str | None = None,
        tokenizer_path: str = "",
        batch_size: int = 8,
        max_length: int = 1024,
        prompt: str = "autocoa",
        mask_observations: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size} must be >= 1")
        self.save_hyperparameters()
        self.template = PromptTemplate(prompt)
        self.train_set: list[TokenizedExample] = []
        self.val_set: list[TokenizedExample] = []
        self._train_sampler: ResumableSampler | None = None

    @functools.cached_property
    def tokenizer(self):
        return AutoTokenizer.from_pretrained(self.hparams.tokenizer_path)

    def setup(self, stage: str | None = None) -> None:
        if not self.train_set:
            self.train_set = self._load(self.hparams.train_path)
        if self.hparams.val_path and not self.val_set:
            self.val_set = self._load(self.hparams.val_path)

    def _load(self, path: str) -> list[TokenizedExample]:
        examples, too_long = [], []
        for t in read_messages(path):
            example = self.tokenize(t)
            if len(example.input_ids) > self.hparams.max_length:
                too_long.append(t.id)
            else:
                examples.append(example)
        if too_long:
            warnings.warn(
                f"{path}: {len(too_long)} examples longer than data.max_length={self.hparams.max_length} "
                f"tokens left out (first: {too_long[0]}); raise max_length to keep them"
            )
        if not examples:
            raise ValueError(f"{path}: every example is longer than data.max_length={self.hparams.max_length}")
        return examples

    def tokenize(self, trajectory: Trajectory) -> TokenizedExample:
        return tokenize_chat(
            self.tokenizer, self.template.messages(trajectory.question), trajectory.response,
            self.hparams.mask_observations,
        )

    def _collate(self, examples: list[TokenizedExample]):
        return collate_examples(examples, self.tokenizer.pad_token_id)

    def train_dataloader(self) -> DataLoader:
        bs = self.hparams.batch_size
        sampler = ResumableSampler(len(self.train_set), bs, seed=self.hparams.seed)
        trainer = self.trainer
        if trainer is not None and trainer.global_step > 0:  # resuming: continue where the checkpoint stopped
            sampler.skip_to(trainer.global_step * trainer.accumulate_grad_batches * bs)
        self._train_sampler = sampler
        return DataLoader(self.train_set, batch_size=bs, sampler=sampler, collate_fn=self._collate, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        if not self.val_set:
            return []
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size, shuffle=False, collate_fn=self._collate)
