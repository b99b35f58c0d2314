"""The processes whose engines generate together (vLLM tensor parallelism): every one takes part in every call.

Under tensor parallelism each process holds a slice of one model, so a `generate` is a collective call: the
processes of a group gather their requests, all run all of them, and each keeps its own part. A process that
skipped a call (its episodes were done) would leave the others waiting forever, so a group calls `generate`
on every turn, with an empty list where it has nothing to ask, until `any` says no process has anything left.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch.distributed as dist

T = TypeVar("T")


class TensorParallelGroup:
    """A torch.distributed process group whose members generate together.

    Args:
        group: the process group (every member of it calls the same collectives in the same order).
        size: its number of processes.
    """

    def __init__(self, group: Any, size: int) -> None:
        self.group, self.size = group, size

    @classmethod
    def of_size(cls, size: int) -> TensorParallelGroup | None:
        """This process's group of `size` consecutive ranks (0..size-1, size..2size-1, ...); None for size 1.

        Every process of the run must call it (creating the groups is collective).

        Raises:
            ValueError: torch.distributed is not running over a multiple of `size` processes.
        """
        if size == 1:
            return None
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if world % size or world < size:
            raise ValueError(
                f"vllm.tensor_parallel_size={size} needs torch.distributed over a multiple of {size} GPUs (world size "
                f"{world}); launch with torchrun or Lightning DDP, or set tensor_parallel_size: 1"
            )
        group, _ = dist.new_subgroups_by_enumeration([list(range(i, i + size)) for i in range(0, world, size)])
        return cls(group, size)

    def gather(self, items: list[T]) -> tuple[list[T], slice]:
        """Every member's `items`, in rank order, and where this process's own lie in that list."""
        parts: list[Any] = [None] * self.size
        dist.all_gather_object(parts, items, group=self.group)
        start = sum(len(p) for p in parts[: dist.get_rank(group=self.group)])
        return [item for part in parts for item in part], slice(start, start + len(items))

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any member (each member must ask at the same point)."""
        flags: list[Any] = [None] * self.size
        dist.all_gather_object(flags, bool(flag), group=self.group)
        return any(flags)
