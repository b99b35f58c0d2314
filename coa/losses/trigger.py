"""SFT stage 1 (CoT+A, AutoCoA §3.2.1): a contrastive loss on when to act, plus NLL on the chosen side."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class TriggerLoss:
    """The loss and its parts, each a scalar averaged over the batch's pairs.

    Args:
        loss: contrastive + alpha * nll, what backward runs on.
        contrastive: mean of -log sigmoid(beta * margin) (margin relative to the reference when one is given).
        nll: mean of -P(chosen).
        accuracy: share of pairs with P(chosen) > P(rejected) under the policy.
        margin: mean of P(chosen) - P(rejected) under the policy.
    """

    loss: Tensor
    contrastive: Tensor
    nll: Tensor
    accuracy: Tensor
    margin: Tensor


def trigger_loss(
    chosen: Tensor,
    rejected: Tensor,
    alpha: float = 1.0,
    beta: float = 1.0,
    ref_chosen: Tensor | None = None,
    ref_rejected: Tensor | None = None,
) -> TriggerLoss:
    """L = -log σ(β·(P(c) - P(r))) + α·(-P(c)), averaged over pairs.

    P(x) = mean_i log π(x_i | prefix, x_<i) is the length-normalised log-prob of a continuation.
    With a reference (DPO-style), the margin is taken relative to it:
    β·((P(c) - P_ref(c)) - (P(r) - P_ref(r))); the NLL term stays -P(c).

    Args:
        chosen: [B] P(chosen) under the policy.
        rejected: [B] P(rejected) under the policy.
        alpha: weight of the NLL term on the chosen continuation.
        beta: scale of the margin inside the sigmoid.
        ref_chosen: [B] P_ref(chosen), or None for the reference-free loss.
        ref_rejected: [B] P_ref(rejected); given together with ref_chosen.

    >>> out = trigger_loss(torch.tensor([-1.0]), torch.tensor([-1.0]), alpha=0.0)
    >>> round(out.loss.item(), 4)  # log 2: no preference yet
    0.6931
    """
    if (ref_chosen is None) != (ref_rejected is None):
        raise ValueError("trigger_loss: give both ref_chosen and ref_rejected, or neither")
    margin = chosen - rejected  # (B,)
    logits = margin if ref_chosen is None else margin - (ref_chosen - ref_rejected)
    contrastive = -F.logsigmoid(beta * logits).mean()
    nll = -chosen.mean()
    return TriggerLoss(
        loss=contrastive + alpha * nll,
        contrastive=contrastive,
        nll=nll,
        accuracy=(margin > 0).float().mean(),
        margin=margin.mean(),
    )


def sequence_means(target_logprobs: Tensor, target_mask: Tensor) -> Tensor:
    """Per-sequence mean of the target tokens' log-probs, from the flat list `Policy.target_logprobs` returns.

    Args:
        target_logprobs: [N] log-probs of the target tokens, in row-major order of `target_mask`.
        target_mask: [B, T-1] 1 where token t+1 is a target; N ones in all.
    Returns:
        [B] sum over each row's targets / max(1, their count).

    >>> sequence_means(torch.tensor([-1.0, -3.0, -2.0]), torch.tensor([[1, 1, 0], [0, 0, 1]]))
    tensor([-2., -2.])
    """
    mask = target_mask.bool()
    rows = mask.nonzero()[:, 0]  # (N,) the row of each target, row-major like boolean indexing
    sums = torch.zeros(mask.shape[0], dtype=target_logprobs.dtype, device=target_logprobs.device)
    sums = sums.index_add(0, rows, target_logprobs)
    return sums / mask.sum(-1).clamp(min=1)
