"""A seeded shuffle that resumes mid-epoch from the trainer's step count, so a restart sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Epoch `e` yields a permutation drawn from `seed + e`, cut to whole batches.

    Resuming needs no sampler state of its own: `skip_to(items_consumed)` is derived from the
    trainer's global step, which the checkpoint holds exactly (a loader's own counter would be off by
    the batches the trainer had prefetched).

    Args:
        num_items: dataset size.
        batch_size: items per batch; an epoch holds `num_items // batch_size` whole batches.
        seed: seeds every epoch's permutation.
        shuffle: False keeps file order (validation).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int = 0, shuffle: bool = True) -> None:
        if num_items < batch_size:
            raise ValueError(f"{num_items} examples cannot fill one batch of batch_size={batch_size}; lower batch_size")
        self.num_items = num_items
        self.items_per_epoch = num_items // batch_size * batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self._skip: dict[int, int] = {}

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of each epoch."""
        self.epoch = epoch

    def skip_to(self, items_consumed: int) -> None:
        """Makes the epoch holding item `items_consumed` start right after it (once)."""
        epoch, offset = divmod(items_consumed, self.items_per_epoch)
        self._skip = {epoch: offset} if offset else {}

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.items_per_epoch))
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.num_items, generator=generator)[: self.items_per_epoch].tolist()

    def __iter__(self) -> Iterator[int]:
        skip = self._skip.pop(self.epoch, 0)
        yield from self.order(self.epoch)[skip:]

    def __len__(self) -> int:
        # The full epoch, also when resuming: Lightning restores how many batches of it were done.
        return self.items_per_epoch
