"""Padding tokenised examples into the tensors a step consumes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from coa.masking import TokenizedExample


@dataclass
class SFTBatch:
    """A padded batch (right padding; positions come from the attention mask).

    Args:
        input_ids: [B, T] token ids, `pad_id` where padded.
        attention_mask: [B, T] 1 on real tokens.
        loss_mask: [B, T] 1 where the token is a target (aligned with input_ids; shifted by the loss); float weights
            where an example's mask holds them (`TokenizedExample`), else long.
        position_ids: [B, T] for packed rows (`coa.data.packing`): each example's positions from 0; None: one
            example per row, positions from the attention mask.
    """

    input_ids: Tensor
    attention_mask: Tensor
    loss_mask: Tensor
    position_ids: Tensor | None = None

    def to(self, device: torch.device | str) -> "SFTBatch":
        positions = None if self.position_ids is None else self.position_ids.to(device)
        return SFTBatch(self.input_ids.to(device), self.attention_mask.to(device), self.loss_mask.to(device), positions)


def loss_mask_dtype(examples: list[TokenizedExample]) -> torch.dtype:
    """float32 where some example weighs its targets, else long (plain 0/1 masks)."""
    weighted = any(isinstance(v, float) for e in examples for v in e.loss_mask)
    return torch.float32 if weighted else torch.long


def collate_examples(examples: list[TokenizedExample], pad_id: int) -> SFTBatch:
    """Right-pads a list of examples to the longest one."""
    length = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), length), dtype=torch.long)
    loss = torch.zeros((len(examples), length), dtype=loss_mask_dtype(examples))
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        attention[row, :n] = 1
        loss[row, :n] = torch.tensor(e.loss_mask)
    return SFTBatch(ids, attention, loss)
