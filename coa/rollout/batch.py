"""Rollouts as the padded tensors a GRPO step consumes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from coa.rollout.runner import Rollout


@dataclass
class RolloutBatch:
    """Groups of episodes, padded on the right (positions come from the attention mask).

    Args:
        input_ids: [N, T] prompt + response ids, N = prompts x group_size, a group's episodes adjacent.
        attention_mask: [N, T] 1 on real tokens.
        loss_mask: [N, T] 1 on the tokens the policy generated (never prompt, observation or padding).
        rewards: [N] one reward per episode.
        group_size: episodes per prompt.
        temperature: the sampling temperature of the episodes (1.0 for greedy ones): the loss scores the
            tokens under the distribution they were drawn from.
        prompt_lengths: [N] prompt tokens of each episode (a group's episodes share their prompt); None where
            unknown.
    """

    input_ids: Tensor
    attention_mask: Tensor
    loss_mask: Tensor
    rewards: Tensor
    group_size: int
    temperature: float = 1.0
    prompt_lengths: Tensor | None = None

    def to(self, device: torch.device | str) -> RolloutBatch:
        return RolloutBatch(
            self.input_ids.to(device), self.attention_mask.to(device), self.loss_mask.to(device),
            self.rewards.to(device), self.group_size, self.temperature,
            None if self.prompt_lengths is None else self.prompt_lengths.to(device),
        )

    def select(self, rows: slice) -> RolloutBatch:
        """The episodes `rows` (for micro-batches), trimmed to their longest sequence."""
        width = int(self.attention_mask[rows].sum(-1).max())
        return RolloutBatch(
            self.input_ids[rows, :width], self.attention_mask[rows, :width], self.loss_mask[rows, :width],
            self.rewards[rows], self.group_size, self.temperature,
            None if self.prompt_lengths is None else self.prompt_lengths[rows],
        )


def collate_rollouts(
    rollouts: list[Rollout], rewards: list[float], group_size: int, pad_id: int, temperature: float = 1.0,
    trained: list[bool] | None = None,
) -> RolloutBatch:
    """Right-pads prompt + response of each episode; the loss mask is the policy mask on the response part.

    Args:
        trained: per episode, whether its tokens get loss (None: all do); an episode left out still counts in
            its group's reward statistics.
    """
    if len(rollouts) != len(rewards):
        raise ValueError(f"{len(rollouts)} rollouts but {len(rewards)} rewards")
    if len(rollouts) % group_size:
        raise ValueError(f"{len(rollouts)} rollouts do not split into groups of {group_size}")
    width = max(len(r.prompt_ids) + len(r.response_ids) for r in rollouts)
    ids = torch.full((len(rollouts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rollouts), width), dtype=torch.long)
    loss = torch.zeros((len(rollouts), width), dtype=torch.long)
    for row, r in enumerate(rollouts):
        if len(r.policy_mask) != len(r.response_ids):
            raise AssertionError(f"rollout {row}: policy mask of {len(r.policy_mask)} for {len(r.response_ids)} ids")
        p, n = len(r.prompt_ids), len(r.prompt_ids) + len(r.response_ids)
        ids[row, :n] = torch.tensor(r.prompt_ids + r.response_ids)
        attention[row, :n] = 1
        if trained is None or trained[row]:
            loss[row, p:n] = torch.tensor(r.policy_mask, dtype=torch.long)
    prompt_lengths = torch.tensor([len(r.prompt_ids) for r in rollouts], dtype=torch.long)
    return RolloutBatch(
        ids, attention, loss, torch.tensor(rewards, dtype=torch.float32), group_size, temperature or 1.0, prompt_lengths
    )
