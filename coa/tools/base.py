"""A tool the agent can call: a name and a batched call from arguments to observation texts."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Tool(ABC):
    """Subclass, set `name`, implement `call`; name the class in a config to use it."""

    name: str = "tool"

    @abstractmethod
    def call(self, arguments: list[str]) -> list[str]:
        """One observation text per argument, in order. Failures become observation texts."""
