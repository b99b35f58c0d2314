"""Tools by name: the functions configs and commands use, over the tool registry `coa.tools.base.TOOLS`.

A config names a tool LightningCLI-style, or by its registered name:

    tool: calculator
    tool: {class_path: coa.tools.bm25.BM25Search, init_args: {corpus_path: corpus.jsonl, topk: 3}}
    tool: {class_path: my_pkg.tools.Wiki, init_args: {lang: en}}   # a tool outside coa

The mechanism (registration, lookup, building, errors) is `coa.registry.Registry`, shared with rewards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coa.registry import qualified_name
from coa.tools.base import TOOLS, Tool

__all__ = ["TOOLS", "qualified_name", "register_tool", "registered_tools", "tool_class", "tool_from_config"]

# The registry's dict under its old name. Rebinding this name no longer reaches the registry: a test
# that wants a private registry swaps `TOOLS.classes` (see tests/tools/test_registry.py).
_TOOLS = TOOLS.classes


def register_tool(cls: type[Tool]) -> None:
    """Registers `cls` under `cls.name`; `Tool.__init_subclass__` does this for every named subclass."""
    TOOLS.register(cls)


def registered_tools() -> dict[str, type[Tool]]:
    """Name -> class for every registered tool, the ones shipped in `coa.tools` included."""
    return TOOLS.registered()


def tool_class(name_or_path: str) -> type[Tool]:
    """The tool class a config names: a registered name ("calculator") or a class path ("pkg.mod.Class")."""
    return TOOLS.lookup(name_or_path)


def tool_from_config(spec: str | Mapping[str, Any] | Tool) -> Tool:
    """Builds the tool a config describes.

    Args:
        spec: a registered name or class path (built with no arguments); a mapping
            {"class_path": name or path, "init_args": {...}}; or a Tool, returned as is.

    >>> tool_from_config({"class_path": "calculator", "init_args": {"max_length": 50}}).call(["2*(3+4)"])
    ['14']
    """
    return TOOLS.build(spec)
