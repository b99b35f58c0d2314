"""What a generation engine does: continue token-id prompts until a stop token or a length limit."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingSettings:
    """How to generate.

    Args:
        max_new_tokens: per call (one turn).
        temperature: 0 means greedy.
        top_p: nucleus sampling when temperature > 0.
        stop_token_ids: generation stops after any of these (the action's close tag, end of sequence).
        seed: seeds sampling.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop_token_ids: tuple[int, ...] = ()
    seed: int = 0


class GenerationEngine(ABC):
    """Turns prompts (token ids) into continuations (token ids, ending with the stop token if one was hit)."""

    @abstractmethod
    def generate(self, prompts: list[list[int]], settings: SamplingSettings) -> list[list[int]]:
        """One continuation per prompt, in order."""


def cut_at_stop(tokens: list[int], stop_token_ids: tuple[int, ...], pad_id: int | None) -> list[int]:
    """The tokens up to and including the first stop token; trailing padding removed.

    >>> cut_at_stop([5, 6, 9, 0, 0], (9,), 0)
    [5, 6, 9]
    """
    for i, token in enumerate(tokens):
        if token in stop_token_ids:
            return tokens[: i + 1]
    while tokens and pad_id is not None and tokens[-1] == pad_id:
        tokens = tokens[:-1]
    return tokens
