"""KV caches kept between the turns of a rollout, found again by the tokens they hold.

A multi-turn rollout calls the engine once per turn with prompt + everything so far. Without a cache
each turn re-reads the whole sequence; with one, a row's next call reads only what was appended (the
observation). A cached micro-batch is a transformers `Cache` over slots [0, T) whose rows grew by
different amounts: slots that no longer belong to a row's sequence (the padding after an early stop,
a token the stop-string cut replaced) are holes, masked out of attention from then on. Positions come
from the attention mask's running sum, so a hole shifts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

KEY_TOKENS = 8  # a row is indexed by its length and last tokens; a hit is confirmed on the whole sequence


@dataclass
class CachedBatch:
    """A micro-batch's cache after a generate call.

    Args:
        cache: the transformers cache over slots [0, T) of every row.
        slot_ids: [B, T] the token each slot was computed for.
        slot_mask: [B, T] 1 where the slot belongs to the row's sequence, 0 on padding and holes.
        rows: per row, the tokens its valid slots spell, in order (the sequence the cache can continue).
    """

    cache: object
    slot_ids: Tensor
    slot_mask: Tensor
    rows: list[list[int]]

    def nbytes(self) -> int:
        return sum(t.nelement() * t.element_size() for t in _cache_tensors(self.cache))


@dataclass(frozen=True)
class Continuation:
    """A prompt that continues cached row `row` of batch `batch_id`: its first `reused` tokens are cached."""

    batch_id: int
    row: int
    reused: int


class PrefixCache:
    """Cached micro-batches of one session, looked up by the prompts that extend their rows.

    Args:
        max_bytes: the oldest batches are dropped past this many bytes of cache tensors.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.batches: dict[int, CachedBatch] = {}
        self._index: dict[tuple[int, tuple[int, ...]], list[tuple[int, int]]] = {}
        self._lengths: set[int] = set()
        self._next_id = 0

    def add(self, batch: CachedBatch) -> None:
        batch_id, self._next_id = self._next_id, self._next_id + 1
        self.batches[batch_id] = batch
        for row, tokens in enumerate(batch.rows):
            self._index.setdefault(_key(tokens, len(tokens)), []).append((batch_id, row))
            self._lengths.add(len(tokens))
        self._evict()

    def take(self, batch_id: int) -> CachedBatch:
        """Removes a batch (its rows are about to be extended in place)."""
        batch = self.batches.pop(batch_id)
        for row, tokens in enumerate(batch.rows):
            self._index[_key(tokens, len(tokens))].remove((batch_id, row))
        return batch

    def match(self, prompts: list[list[int]]) -> list[Continuation | None]:
        """For each prompt, the cached row whose whole sequence begins it (longest first); a row serves one prompt.

        At least one token of each prompt is left to read, so a prompt equal to a cached row still gets logits.
        """
        used: set[tuple[int, int]] = set()
        out: list[Continuation | None] = []
        for prompt in prompts:
            found = self._longest_row(prompt, used)
            if found is None:
                out.append(None)
                continue
            batch_id, row, length = found
            used.add((batch_id, row))
            out.append(Continuation(batch_id, row, min(length, len(prompt) - 1)))
        return out

    def _longest_row(self, prompt: list[int], used: set[tuple[int, int]]) -> tuple[int, int, int] | None:
        for length in range(len(prompt), 0, -1):
            if length not in self._lengths:
                continue
            for batch_id, row in self._index.get(_key(prompt, length), ()):
                if (batch_id, row) not in used and self.batches[batch_id].rows[row] == prompt[:length]:
                    return batch_id, row, length
        return None

    def _evict(self) -> None:
        while len(self.batches) > 1 and sum(b.nbytes() for b in self.batches.values()) > self.max_bytes:
            self.take(next(iter(self.batches)))


def _key(tokens: list[int], length: int) -> tuple[int, tuple[int, ...]]:
    return length, tuple(tokens[max(0, length - KEY_TOKENS) : length])


def _cache_tensors(cache: object) -> list[Tensor]:
    """The key/value tensors of a transformers cache (layered `Cache`, or the legacy tuple of tuples)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [t for layer in layers for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
                if isinstance(t, Tensor)]
    return [t for pair in cache for t in pair if isinstance(t, Tensor)]  # type: ignore[union-attr]


def holes_after(slot_mask: Tensor, keep: list[int]) -> Tensor:
    """A copy of `slot_mask` [B, T] in which row b keeps only its first `keep[b]` valid slots."""
    out = slot_mask.clone()
    for row, n in enumerate(keep):
        valid = torch.nonzero(out[row]).flatten()
        out[row, valid[n:]] = 0
    return out
