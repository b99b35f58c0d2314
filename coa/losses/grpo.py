"""GRPO (DeepSeekMath §4.1; AutoCoA §3.3): group-relative advantages, a PPO-clipped ratio, KL to the reference.

Token tensors here are flat: the M loss tokens of a batch (the policy's own tokens; observations,
prompts and padding never appear), with `seq_index` [M] naming each token's sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Aggregation = Literal["token_mean", "sequence_mean"]
AGGREGATIONS = ("token_mean", "sequence_mean")


def group_advantages(rewards: Tensor, group_size: int, scale_by_std: bool = False, eps: float = 1e-6) -> Tensor:
    """A_i = r_i - mean(r of i's group), optionally / (std(group) + eps) (unbiased std, as verl's GRPO).

    Args:
        rewards: [N] rewards, N = groups x group_size, a group's episodes adjacent.
        group_size: episodes per prompt.
    Returns:
        [N] advantages; 0 for every member of a group whose rewards are all equal.

    >>> [round(a, 4) for a in group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0]), 3).tolist()]
    [0.6667, -0.3333, -0.3333, 0.0, 0.0, 0.0]
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    groups = rewards.view(-1, group_size)
    centered = groups - groups.mean(-1, keepdim=True)
    if scale_by_std and group_size > 1:
        centered = centered / (groups.std(-1, keepdim=True) + eps)
    return centered.reshape(-1)


def token_weights(seq_index: Tensor, num_sequences: int, aggregation: Aggregation) -> Tensor:
    """Per-token weights w with loss = sum(w * token_loss), so micro-batches add up to the batch's loss.

    token_mean: w = 1 / M (every token of the batch counts the same: long answers weigh more).
    sequence_mean: w = 1 / (num_sequences * tokens of the token's sequence) (every sequence counts the same).

    Args:
        seq_index: [M] the sequence of each loss token.
        num_sequences: sequences in the whole batch (those without loss tokens included).
    """
    if aggregation == "token_mean":
        return torch.full(seq_index.shape, 1.0 / max(1, seq_index.numel()), device=seq_index.device)
    if aggregation == "sequence_mean":
        lengths = torch.bincount(seq_index, minlength=num_sequences).float()
        return 1.0 / (num_sequences * lengths[seq_index])
    raise ValueError(f"loss aggregation {aggregation!r} is not one of {AGGREGATIONS}")


def k3_kl(logprobs: Tensor, ref_logprobs: Tensor, clamp: float | None = None) -> Tensor:
    """Schulman's k3 estimator of KL(π || π_ref) per token: exp(ref - logp) - (ref - logp) - 1 (>= 0, 0 when equal),
    clamped to [-clamp, clamp] when given: verl's `low_var_kl`, which AutoCoA's release uses with clamp 10 (a
    token the policy now finds far likelier than the reference does gives an exponentially large estimate; past
    the clamp it gives none, and no gradient).

    >>> k3_kl(torch.tensor([0.0]), torch.tensor([15.0]), clamp=10.0).item()
    10.0
    """
    delta = ref_logprobs - logprobs
    kl = torch.exp(delta) - delta - 1
    return kl if clamp is None else kl.clamp(-clamp, clamp)


@dataclass(frozen=True)
class GRPOTokenLoss:
    """Per-token loss and what to log about it.

    Args:
        loss: [M] clipped policy-gradient loss + kl_coef * k3 KL - entropy_coef * entropy per token.
        kl: [M] the k3 KL per token (zeros without a reference).
        clipped: [M] True where the clipped branch was taken (the ratio left [1-ε, 1+ε] in the adverse direction).
        ratio: [M] π / π_old per token.
    """

    loss: Tensor
    kl: Tensor
    clipped: Tensor
    ratio: Tensor


def grpo_token_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    ref_logprobs: Tensor | None = None,
    clip_eps: float = 0.2,
    kl_coef: float = 0.0,
    kl_clamp: float | None = None,
    entropy: Tensor | None = None,
    entropy_coef: float = 0.0,
) -> GRPOTokenLoss:
    """max(-A·ρ, -A·clip(ρ, 1-ε, 1+ε)) + β·KL_k3 - c·H, per token, ρ = exp(logp - logp_old).

    Args:
        logprobs: [M] log π(token) under the policy being trained (with gradient).
        old_logprobs: [M] under the policy that generated the rollouts (no gradient).
        advantages: [M] the advantage of each token's sequence.
        ref_logprobs: [M] under the reference policy; None means no KL term.
        clip_eps: ε.
        kl_coef: β.
        kl_clamp: the KL estimate is clamped to [-kl_clamp, kl_clamp] (None: not clamped).
        entropy: [M] the entropy of the policy's next-token distribution at each token, with gradient (a bonus
            that keeps the policy exploring, as verl's `entropy_coeff`); None means no entropy term.
        entropy_coef: c.
    """
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    pg = torch.maximum(unclipped, clipped)
    kl = k3_kl(logprobs, ref_logprobs, kl_clamp) if ref_logprobs is not None else torch.zeros_like(logprobs)
    loss = pg + kl_coef * kl
    if entropy is not None and entropy_coef:
        loss = loss - entropy_coef * entropy
    return GRPOTokenLoss(loss, kl.detach(), (clipped > unclipped).detach(), ratio.detach())
