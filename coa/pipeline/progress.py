"""Time so far and time left: each stage kind's seconds per step, measured once a stage of that kind ran here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


def format_duration(seconds: float) -> str:
    """65 -> "1m05s"; 3725 -> "1h02m05s"; 9.4 -> "9s"."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class Progress:
    """The pipeline's clock and its per-stage-kind step rates.

    Args:
        guesses: seconds per step of each stage kind before one has run here (the config's `seconds_per_step`).
        start: when the pipeline started (time.time()).
    """

    guesses: dict[str, float]
    start: float = field(default_factory=time.time)
    measured: dict[str, float] = field(default_factory=dict)

    def record(self, stage: str, steps: int, seconds: float) -> None:
        """A stage of kind `stage` ran `steps` steps in `seconds` (the latest run sets the rate)."""
        if steps > 0:
            self.measured[stage] = seconds / steps

    def rate(self, stage: str) -> float:
        return self.measured.get(stage, self.guesses.get(stage, 0.0))

    def seconds_left(self, remaining: list[tuple[str, int]]) -> float:
        """Training time of the (stage kind, steps) still to run.

        >>> Progress({"sft2": 0.1, "rl2": 2.0}).seconds_left([("sft2", 100), ("rl2", 5)])
        20.0
        """
        return sum(self.rate(stage) * steps for stage, steps in remaining)

    def elapsed(self) -> float:
        return time.time() - self.start

    def line(self, remaining: list[tuple[str, int]]) -> str:
        return f"{format_duration(self.elapsed())} so far, ~{format_duration(self.seconds_left(remaining))} of training left"
