"""What the SFT datamodules share: a tokenizer, files read and tokenised once, a resumable shuffle."""

from __future__ import annotations

import functools
import warnings
from abc import abstractmethod
from collections.abc import Iterable
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from coa.data.sampler import ResumableSampler
from coa.models.loading import load_tokenizer


class TokenizedDataModule(L.LightningDataModule):
    """Base of the stage datamodules; subclasses save `train_path`, `val_path`, `tokenizer_path`,
    `trust_remote_code`, `chat_template`, `add_action_tokens`, `batch_size`, `max_length`, `seed` as
    hyperparameters and say how to read, tokenise and collate."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size} must be >= 1")
        self.train_set: list[Any] = []
        self.val_set: list[Any] = []

    @functools.cached_property
    def tokenizer(self):
        hp = self.hparams  # the policy's tokenizer settings, so ids and template agree with the policy's
        return load_tokenizer(
            hp.tokenizer_path, hp.trust_remote_code, chat_template=hp.chat_template,
            add_action_tokens=hp.add_action_tokens,
        )

    @abstractmethod
    def read(self, path: str) -> Iterable[tuple[str, Any]]:
        """(id, tokenised item) for each record of the file; errors name the file, line and field."""

    @abstractmethod
    def num_tokens(self, item: Any) -> int:
        """The length `max_length` is checked against."""

    @abstractmethod
    def _collate(self, items: list[Any]) -> Any:
        """A padded batch."""

    def setup(self, stage: str | None = None) -> None:
        if not self.train_set:
            self.train_set = self._load(self.hparams.train_path)
        if self.hparams.val_path and not self.val_set:
            self.val_set = self._load(self.hparams.val_path)

    def _load(self, path: str) -> list[Any]:
        kept, too_long = [], []
        for item_id, item in self.read(path):
            if self.num_tokens(item) > self.hparams.max_length:
                too_long.append(item_id)
            else:
                kept.append(item)
        if too_long:
            warnings.warn(
                f"{path}: {len(too_long)} examples longer than data.max_length={self.hparams.max_length} "
                f"tokens left out (first: {too_long[0]}); raise max_length to keep them"
            )
        if not kept:
            raise ValueError(f"{path}: every example is longer than data.max_length={self.hparams.max_length}")
        return kept

    def train_dataloader(self) -> DataLoader:
        bs = self.hparams.batch_size  # per process: a DDP run's global batch is batch_size x world size
        lengths = [self.num_tokens(item) for item in self.train_set] if self.hparams.get("group_by_length") else None
        trainer = self.trainer
        processes, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = ResumableSampler(
            len(self.train_set), bs, seed=self.hparams.seed, lengths=lengths, num_replicas=processes, rank=rank
        )
        if trainer is not None and trainer.global_step > 0:  # resuming: continue where the checkpoint stopped
            sampler.skip_to(self.batches_done() * bs * processes)
        return DataLoader(self.train_set, batch_size=bs, sampler=sampler, collate_fn=self._collate, drop_last=True)

    def batches_done(self) -> int:
        """Training batches the trainer has consumed, from its checkpointed step count."""
        return self.trainer.global_step * self.trainer.accumulate_grad_batches

    def val_dataloader(self) -> DataLoader:
        if not self.val_set:
            return []
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size, shuffle=False, collate_fn=self._collate)
