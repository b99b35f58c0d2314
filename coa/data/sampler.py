"""A seeded shuffle that resumes mid-epoch from the trainer's step count, so a restart sees the same batches, and
that splits each global batch over the processes of a DDP run into contiguous slices."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler


class ResumableSampler(DistributedSampler):
    """Epoch `e` yields a permutation drawn from `seed + e`, cut to whole global batches.

    With several processes (`num_replicas`), global batch b is items [b * G, (b + 1) * G) of the permutation,
    G = batch_size * num_replicas, and process `rank` takes the slice [rank * batch_size, (rank + 1) * batch_size)
    of it: the processes together see exactly the batches one process with batch size G sees, so DDP
    reproduces that run (a GRPO prompt's group is rolled out whole on the process that holds the prompt).
    It is a DistributedSampler only so that Lightning leaves it in place instead of wrapping it in one.

    Resuming needs no sampler state of its own: `skip_to(items_consumed)` is derived from the
    trainer's global step, which the checkpoint holds exactly (a loader's own counter would be off by
    the batches the trainer had prefetched).

    Args:
        num_items: dataset size.
        batch_size: items per batch and process; an epoch holds `num_items // (batch_size * num_replicas)` whole
            global batches.
        seed: seeds every epoch's permutation.
        shuffle: False keeps file order (validation).
        lengths: each item's length; given, each epoch's shuffle is grouped by length the way transformers'
            `group_by_length` does it (batches of similar lengths, in random order): little padding (SFT2 on the
            embedded world: 1.58 padded tokens per real token -> 1.01), grouped per global batch.
        num_replicas: processes sharing each global batch (the trainer's world size).
        rank: this process (the trainer's global rank).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 lengths: list[int] | None = None, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(range(num_items), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        global_batch = batch_size * num_replicas
        if num_items < global_batch:
            where = f" x {num_replicas} processes" if num_replicas > 1 else ""
            raise ValueError(
                f"{num_items} examples cannot fill one batch of batch_size={batch_size}{where}; lower batch_size"
            )
        self.num_items = num_items
        self.global_batch = global_batch
        self.items_per_epoch = num_items // global_batch * global_batch
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
        """Makes the epoch holding item `items_consumed` (counted over all processes) start right after it (once)."""
        epoch, offset = divmod(items_consumed, self.items_per_epoch)
        self._skip = {epoch: offset} if offset else {}

    def order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.items_per_epoch))
        generator = torch.Generator().manual_seed(self.seed + epoch)
        if self.lengths is not None:
            from transformers.trainer_pt_utils import get_length_grouped_indices

            grouped = get_length_grouped_indices(self.lengths, self.global_batch, generator=generator)[: self.items_per_epoch]
            # transformers sorts each mega-batch long to short; the batches are shuffled too, so no step sees
            # only the longest (or shortest) kind of example in a row
            batches = [grouped[i: i + self.global_batch] for i in range(0, len(grouped), self.global_batch)]
            return [i for b in torch.randperm(len(batches), generator=generator).tolist() for i in batches[b]]
        return torch.randperm(self.num_items, generator=generator)[: self.items_per_epoch].tolist()

    def __iter__(self) -> Iterator[int]:
        skip = self._skip.pop(self.epoch, 0)
        order = self.order(self.epoch)
        if self.num_replicas == 1:
            yield from order[skip:]
            return
        if skip % self.global_batch:
            raise ValueError(f"cannot resume {skip} items into an epoch of global batches of {self.global_batch}")
        for start in range(skip, self.items_per_epoch, self.global_batch):
            yield from order[start + self.rank * self.batch_size: start + (self.rank + 1) * self.batch_size]

    def __len__(self) -> int:
        # This process's share of the full epoch, also when resuming: Lightning restores how many batches were done.
        return self.items_per_epoch // self.num_replicas
