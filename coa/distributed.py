"""What a process of a DDP run needs from the others: its share of a global-batch mean, counts summed over all.

A mean over the global batch when DDP splits it: what each process multiplies its local mean by.

DDP averages gradients over processes, so a loss that is a mean over each process's own tokens weighs a
token of a short local batch more than one of a long batch: the result differs from one process holding the
whole batch. Scaling each local mean by `local_count * processes / global_count` makes the averaged gradient
that of the mean over every token of the global batch (transformers' Trainer does the same with
`num_items_in_batch`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def global_mean_factor(local_count: Tensor | int | float) -> Tensor:
    """local_count * processes / (local_count summed over processes); exactly 1 without torch.distributed.

    Every process must call it at the same point (an all-reduce of one number)."""
    local = torch.as_tensor(local_count, dtype=torch.float64)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return torch.ones((), dtype=torch.float32, device=local.device)
    total = local.clone().to(_collective_device())
    dist.all_reduce(total)
    return (local * dist.get_world_size() / total.cpu().clamp(min=1)).float()


def _collective_device() -> torch.device:
    """NCCL reduces CUDA tensors, gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def summed_over_processes(counts: dict[str, float]) -> dict[str, float]:
    """Each key's value summed over the processes; a key some process lacks counts 0 there. `counts` itself
    without torch.distributed. Every process must call it at the same point."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return dict(counts)
    gathered: list[dict[str, float] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, counts)
    total: dict[str, float] = {}
    for part in gathered:
        for key, value in (part or {}).items():
            total[key] = total.get(key, 0.0) + value
    return total
