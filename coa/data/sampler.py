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
        lengths: each item's length; given, each epoch's shuffle is grouped by length the way transformers'
            `group_by_length` does it (batches of similar lengths, in random order): little padding (SFT2 on the
            embedded world: 1.58 padded tokens per real token -> 1.01).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 lengths: list[int] | None = None) -> None:
        if num_items < batch_size:
            raise ValueError(f"{num_items} examples cannot fill one batch of batch_size={batch_size}; lower batch_size")
        self.num_items = num_items
        self.items_per_epoch = num_items // batch_size * batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.batch_size = batch_size
        if lengths is not None and len(lengths) != num_items:
            raise ValueError(f"lengths has {len(lengths)} entries for {num_items} items")
        self.lengths = lengths
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
        if self.lengths is not None:
            from transformers.trainer_pt_utils import get_length_grouped_indices

            grouped = get_length_grouped_indices(self.lengths, self.batch_size, generator=generator)[: self.items_per_epoch]
            # transformers sorts each mega-batch long to short; the batches are shuffled too, so no step sees
            # only the longest (or shortest) kind of example in a row
            batches = [grouped[i: i + self.batch_size] for i in range(0, len(grouped), self.batch_size)]
            return [i for b in torch.randperm(len(batches), generator=generator).tolist() for i in batches[b]]
        return torch.randperm(self.num_items, generator=generator)[: self.items_per_epoch].tolist()

    def __iter__(self) -> Iterator[int]:
        skip = self._skip.pop(self.epoch, 0)
        yield from self.order(self.epoch)[skip:]

    def __len__(self) -> int:
        # The full epoch, also when resuming: Lightning restores how many batches of it were done.
        return self.items_per_epoch
