"""What a generation engine does: continue token-id prompts until a stop string, a stop token or a length limit."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

if TYPE_CHECKING:
    from coa.policy import Policy
    from coa.rollout.engines.streams import RowStreams

FinishReason = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class SamplingSettings:
    """How to generate.

    Args:
        max_new_tokens: per call (one turn).
        temperature: 0 means greedy.
        top_p: nucleus sampling when temperature > 0.
        stop_strings: generation stops right after the first of these in the new text (the action's
            close tag), whatever tokens spell it; the output is cut there, token-exact.
        stop_token_ids: generation stops after any of these (end of sequence, end of turn).
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Generation:
    """One continuation.

    Args:
        token_ids: [N] the new tokens; they decode to exactly `text`.
        text: the new text, ending with the stop string when `finish_reason` is "stop".
        finish_reason: "stop" (a stop string), "eos" (a stop token, kept as the last id) or "length".
        stop: the stop string or token that ended it, None for "length".
        unsampled: how many of the last `token_ids` the policy did not sample: a stop string ending inside a
            token leaves the kept part of that token re-encoded (one token or more), which the policy never
            chose; they belong to the sequence but get no policy-gradient loss.
    """

    token_ids: list[int]
    text: str
    finish_reason: FinishReason
    stop: str | int | None = None
    unsampled: int = 0


class GenerationEngine(ABC):
    """Turns prompts (token ids) into continuations; sampling draws from the call's randomness, never the global RNG."""

    @abstractmethod
    def generate(
        self, prompts: list[list[int]], settings: SamplingSettings, generator: torch.Generator | RowStreams | None = None
    ) -> list[Generation]:
        """One continuation per prompt, in order.

        Args:
            prompts: token ids, one list per prompt.
            settings: limits, sampling and stops.
            generator: the randomness of this call (sampling only): RowStreams (one stream per prompt: a row's
                sample does not depend on the rows beside it), or a generator the rows' streams are drawn from;
                None draws them from a fixed seed 0.
        """

    def eos_token_ids(self) -> tuple[int, ...]:
        """End-of-sequence ids the model itself declares (a generation_config's); () where none."""
        return ()

    @contextmanager
    def session(self) -> Iterator[None]:
        """The calls made inside belong together (the turns of a batch of episodes, with unchanged weights): an
        engine may keep state between them, such as KV caches. Nothing here."""
        yield

    def sync_weights(self, policy: Policy) -> None:
        """Makes the engine generate with the policy's current weights (a no-op where it shares them)."""

    @property
    def holds_own_weights(self) -> bool:
        """Whether the engine keeps a copy of the weights (so it must be synced after each optimizer step)."""
        return False

    def any_active(self, active: bool) -> bool:
        """Whether this process or any process generating together with it still has an episode to continue.

        An engine whose `generate` is collective (vLLM under tensor parallelism) asks its group: every process
        of the group must then call `generate` on every turn, with an empty list once its own episodes are done,
        until this says no. Elsewhere it is `active` itself."""
        return active

    def sleep(self) -> None:
        """Frees the memory the engine holds while the trainer steps (vLLM's sleep mode); a no-op here."""

    def wake_up(self) -> None:
        """Takes back what `sleep` freed; `generate` and `sync_weights` call it themselves. A no-op here."""
