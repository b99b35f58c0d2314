"""A tool the agent can call: a name and a batched call from arguments to observation texts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from coa.registry import Registry


class Tool(ABC):
    """Subclass, set `name`, implement `call`; name the class in a config to use it.

    A subclass that sets `name` in its body registers itself under it in `TOOLS`;
    `tool_from_config("calculator")` or `{"class_path": "pkg.mod.MyTool", "init_args": {...}}` builds it.
    """

    name: str = "tool"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # a subclass that only tweaks a tool keeps no name of its own
            TOOLS.register(cls)

    @abstractmethod
    def call(self, arguments: list[str]) -> list[str]:
        """One observation text per argument, in order. Failures become observation texts."""


TOOLS: Registry[Tool] = Registry(Tool, kind="tool", package="coa.tools")
