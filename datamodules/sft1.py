"""CoT+A pair files -> batches of chosen and rejected continuations for SFT stage 1 (the trigger module)."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import lightning as L
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from coa.data.batch import SFTBatch, collate_examples
from coa.data.cota_pairs import THINK_OPEN, ContrastivePair, pair_messages, read_cota_pairs
from coa.data.sampler import ResumableSampler
from coa.masking import TokenizedExample, tokenize_continuation
from coa.prompts import PromptTemplate


@dataclass(frozen=True)
class TokenizedPair:
    """One decision point, both ways: the same prompt + prefix tokens, then each continuation (loss on it only)."""

    chosen: TokenizedExample
    rejected: TokenizedExample


def collate_pairs(pairs: list[TokenizedPair], pad_id: int) -> SFTBatch:
    """[2B, T] right-padded: rows 0..B-1 hold the chosen continuations, rows B..2B-1 the rejected (pair i: i, B+i)."""
    return collate_examples([p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id)


class PairDataModule(L.LightningDataModule):
    """Reads CoT+A pairs (AutoCoA's `conversation`/`chosen`/`rejected` JSON), tokenises both sides, batches them.

    The assistant turn is opened with `<think>` + the pair's prefix; only the continuation carries loss.

    Args:
        train_path: pair file (JSON array or JSONL) for training.
        val_path: pair file for validation (optional).
        tokenizer_path: directory or hub id of the tokenizer (usually the policy's).
        batch_size: pairs per batch (the step sees 2 * batch_size sequences).
        max_length: pairs whose longer side exceeds this many tokens are left out (with a warning).
        prompt: None keeps each pair's own prompt; a template name ("autocoa", "short") or a text with
            `{question}` rebuilds it from the question (use the same one as SFT stage 2).
        seed: seeds the shuffle.
    """

    def __init__(
        self,
        train_path: str,
        val_path: str | None = None,
        tokenizer_path: str = "",
        batch_size: int = 8,
        max_length: int = 1024,
        prompt: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size} must be >= 1")
        self.save_hyperparameters()
        self.template = PromptTemplate(prompt) if prompt is not None else None
        self.train_set: list[TokenizedPair] = []
        self.val_set: list[TokenizedPair] = []

    @functools.cached_property
    def tokenizer(self):
        return AutoTokenizer.from_pretrained(self.hparams.tokenizer_path)

    def setup(self, stage: str | None = None) -> None:
        if not self.train_set:
            self.train_set = self._load(self.hparams.train_path)
        if self.hparams.val_path and not self.val_set:
            self.val_set = self._load(self.hparams.val_path)

    def tokenize(self, pair: ContrastivePair, where: str = "") -> TokenizedPair:
        messages = pair_messages(pair, self.template)
        sides = {
            name: tokenize_continuation(self.tokenizer, messages, THINK_OPEN + pair.prefix, text)
            for name, text in (("chosen", pair.chosen), ("rejected", pair.rejected))
        }
        for name, example in sides.items():
            if not any(example.loss_mask):
                raise ValueError(f"{where}pair {pair.id}: field '{name}' has no token of its own after the prefix")
        return TokenizedPair(sides["chosen"], sides["rejected"])

    def _load(self, path: str) -> list[TokenizedPair]:
        out, too_long = [], []
        for pair in read_cota_pairs(path):
            tokenized = self.tokenize(pair, f"{path}: ")
            if max(len(tokenized.chosen.input_ids), len(tokenized.rejected.input_ids)) > self.hparams.max_length:
                too_long.append(pair.id)
            else:
                out.append(tokenized)
        if too_long:
            warnings.warn(
                f"{path}: {len(too_long)} pairs longer than data.max_length={self.hparams.max_length} tokens "
                f"left out (first: {too_long[0]}); raise max_length to keep them"
            )
        if not out:
            raise ValueError(f"{path}: every pair is longer than data.max_length={self.hparams.max_length}")
        return out

    def _collate(self, pairs: list[TokenizedPair]) -> SFTBatch:
        return collate_pairs(pairs, self.tokenizer.pad_token_id)

    def train_dataloader(self) -> DataLoader:
        bs = self.hparams.batch_size
        sampler = ResumableSampler(len(self.train_set), bs, seed=self.hparams.seed)
        trainer = self.trainer
        if trainer is not None and trainer.global_step > 0:  # resuming: continue where the checkpoint stopped
            sampler.skip_to(trainer.global_step * trainer.accumulate_grad_batches * bs)
        return DataLoader(self.train_set, batch_size=bs, sampler=sampler, collate_fn=self._collate, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        if not self.val_set:
            return []
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size, shuffle=False, collate_fn=self._collate)
