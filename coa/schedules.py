"""Learning-rate schedules as pure functions of the step."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """Multiplier of the peak rate: linear warm-up to 1, then cosine down to `min_ratio` at `total_steps`.

    >>> warmup_cosine(0, 10, 100), warmup_cosine(10, 10, 100), round(warmup_cosine(100, 10, 100), 3)
    (0.1, 1.0, 0.1)
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_constant(step: int, warmup_steps: int) -> float:
    """Multiplier of the peak rate: linear warm-up to 1, then 1 (verl's `warmup_style: constant`, AutoCoA's).

    >>> warmup_constant(0, 10), warmup_constant(9, 10), warmup_constant(500, 10), warmup_constant(0, 0)
    (0.1, 1.0, 1.0, 1.0)
    """
    return (step + 1) / warmup_steps if step < warmup_steps else 1.0
