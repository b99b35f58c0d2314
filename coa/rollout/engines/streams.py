"""One random stream per row: what a row samples depends on its own seed, never on the rows beside it.

A batch drawn from one generator gives each row the numbers left over by the rows before it, so the same
prompt samples differently in another micro-batch, another `generation_batch_size` or on another process.
With a stream per row, the rollouts of a global batch are the same on 1 process or split over N (DDP), which
is what makes multi-process GRPO reproduce the single-process run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor


class RowStreams:
    """A torch.Generator per row; `select` hands a subset of rows (their streams, not copies) to a sub-call.

    Args:
        generators: one per row, in row order.
    """

    def __init__(self, generators: list[torch.Generator]) -> None:
        self.generators = generators

    @classmethod
    def from_seeds(cls, seeds: Sequence[int]) -> RowStreams:
        return cls([torch.Generator().manual_seed(int(s)) for s in seeds])

    @classmethod
    def from_generator(cls, generator: torch.Generator | None, rows: int) -> RowStreams:
        """`rows` streams seeded by successive draws of `generator` (None: a generator seeded 0)."""
        source = generator if generator is not None else torch.Generator().manual_seed(0)
        return cls.from_seeds([draw_seed(source) for _ in range(rows)])

    def __len__(self) -> int:
        return len(self.generators)

    def select(self, rows: Sequence[int]) -> RowStreams:
        return RowStreams([self.generators[i] for i in rows])

    def uniforms(self, count: int, device: torch.device | str = "cpu") -> Tensor:
        """[rows, count] float64 uniforms in [0, 1); each row's from its own stream (advances it by `count`)."""
        if not self.generators:
            return torch.zeros((0, count), dtype=torch.float64, device=device)
        rows = [torch.rand(count, generator=g, dtype=torch.float64) for g in self.generators]
        return torch.stack(rows).to(device)

    def seeds(self) -> list[int]:
        """One fresh seed per row (for engines that take a seed per request, like vLLM)."""
        return [draw_seed(g) for g in self.generators]


def as_streams(randomness: torch.Generator | RowStreams | None, rows: int) -> RowStreams:
    """The call's streams: given ones (one per row), else streams drawn from a generator (None: seed 0)."""
    if isinstance(randomness, RowStreams):
        if len(randomness) != rows:
            raise ValueError(f"{len(randomness)} random streams for {rows} rows")
        return randomness
    return RowStreams.from_generator(randomness, rows)


def episode_seed(*parts: object) -> int:
    """A 62-bit seed from any values (a run's seed, a step, a question id, a member of its group), the same on
    every process and every Python run (unlike `hash`)."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 2


def draw_seed(generator: torch.Generator | None) -> int:
    """A 62-bit seed from `generator` (0 without one): each call advances it, so successive calls differ."""
    if generator is None:
        return 0
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())
