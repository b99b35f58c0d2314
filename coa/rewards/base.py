"""A reward: scores model outputs against gold answers; subclasses are named in YAML like tools.

    reward: autocoa
    reward: {class_path: coa.rewards.em.ExactMatchReward, init_args: {format_penalty: 0.5, fmt: search_r1}}
    reward: {class_path: my_pkg.rewards.Strict, init_args: {...}}   # a reward outside coa

In a YAML config a mapping names its class by import path: jsonargparse resolves a `class_path` inside a
callback's arguments itself, before coa sees it, so a registered name works there only as the plain string
(`reward_from_config` in Python takes `{class_path: exact_match, ...}` too).
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from coa.formats.action_format import ActionFormat, action_format
from coa.registry import Registry


class Reward(ABC):
    """Subclass, set `name`, implement `score`; name the class in a config to use it.

    The one format judge is `ActionFormat.parse_output`: a response it reports errors for scores
    `score - format_penalty`.

    Args:
        format_penalty: subtracted from the score of a response that breaks the action format.
        fmt: the action tags the model writes: a built-in name ("autocoa", "search_r1"), a mapping
            of tags, or an ActionFormat.
    """

    name: str = "reward"
    scores_decoded_sequence: bool = False  # True: `score` gets prompt and response as `decode(prompt + response ids)`
    # gives them, special tokens and the end of sequence included (AutoCoA's release scores that text)

    def __init__(self, format_penalty: float = 0.0, fmt: str | Mapping[str, str] | ActionFormat = "autocoa") -> None:
        is_number = isinstance(format_penalty, numbers.Real) and not isinstance(format_penalty, bool)
        if not is_number or not math.isfinite(format_penalty) or format_penalty < 0:
            raise ValueError(
                f"{type(self).__name__}: format_penalty={format_penalty!r} must be a finite number >= 0; "
                "set 0 for no penalty"
            )
        self.format_penalty = float(format_penalty)
        self.fmt = action_format(fmt)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a subclass that only tweaks a reward keeps no name of its own
            REWARDS.register(cls)

    @abstractmethod
    def score(self, response: str, golds: list[str], prompt: str) -> float:
        """The score of one response, before any format penalty.

        Args:
            response: the model's generation for one question, observations included.
            golds: the accepted answers (any one suffices).
            prompt: the text the response continues (the chat-formatted question).
        """

    def format_errors_of(self, response: str) -> list[str]:
        """Names of the ways `response` breaks the format (`FORMAT_ERRORS`), by `parse_output`; empty if none."""
        return self.fmt.parse_output(response).errors

    def __call__(self, responses: list[str], golds: list[list[str]], prompts: list[str]) -> list[float]:
        """One reward per response: `score`, less `format_penalty` where `format_errors_of` is non-empty.

        Args:
            responses: [B] model generations.
            golds: [B] the accepted answers of each response's question.
            prompts: [B] the text each response continues.
        """
        if not len(responses) == len(golds) == len(prompts):
            raise ValueError(
                f"{type(self).__name__}: got {len(responses)} responses, {len(golds)} gold lists and "
                f"{len(prompts)} prompts; pass one of each per response"
            )
        rewards = []
        for response, answers, prompt in zip(responses, golds, prompts):
            reward = self.score(response, answers, prompt)
            if self.format_penalty and self.format_errors_of(response):
                reward -= self.format_penalty
            rewards.append(reward)
        return rewards


REWARDS: Registry[Reward] = Registry(Reward, kind="reward", package="coa.rewards")


def registered_rewards() -> dict[str, type[Reward]]:
    """Name -> class for every registered reward, the ones shipped in `coa.rewards` included."""
    return REWARDS.registered()


def reward_from_config(spec: str | Mapping[str, Any] | Reward) -> Reward:
    """Builds the reward a config describes.

    Args:
        spec: a registered name or class path (built with defaults); a mapping
            {"class_path": name or path, "init_args": {...}}; or a Reward, returned as is.

    >>> reward_from_config("exact_match")(["<think> x </think> \\\\boxed{Lisbon}"], [["Lisbon"]], [""])
    [1.0]
    """
    return REWARDS.build(spec)
