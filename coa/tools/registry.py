"""Tools by name: subclasses of `Tool` register themselves; configs build one by name or class path.

A config names a tool LightningCLI-style, or by its registered name:

    tool: calculator
    tool: {class_path: coa.tools.bm25.BM25Search, init_args: {corpus_path: corpus.jsonl, topk: 3}}
    tool: {class_path: my_pkg.tools.Wiki, init_args: {lang: en}}   # a tool outside coa

Importing a class path imports its module, which registers the class. Names of tools shipped in
`coa.tools` resolve without an import; a tool elsewhere is found by name once its module is imported.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # base imports this module; the runtime import of Tool is inside the functions
    from coa.tools.base import Tool

_TOOLS: dict[str, type[Tool]] = {}
_UNIMPORTABLE: dict[str, str] = {}  # module of coa.tools -> why it failed to import (a missing optional extra)
_SPEC_KEYS = ("class_path", "init_args")


def qualified_name(cls: type) -> str:
    """`module.QualName`: two definitions of one class (a module imported again) share it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register_tool(cls: type[Tool]) -> None:
    """Registers `cls` under `cls.name`; called by `Tool.__init_subclass__`.

    Raises:
        ValueError: another class already holds the name (a new definition of the same class replaces it).
    """
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"tool {qualified_name(cls)}: name={name!r} must be a non-empty string")
    held = _TOOLS.get(name)
    if held is not None and qualified_name(held) != qualified_name(cls):
        raise ValueError(
            f"tool name {name!r} is taken by {qualified_name(held)}; "
            f"give {qualified_name(cls)} another name (class attribute `name`)"
        )
    _TOOLS[name] = cls


def registered_tools() -> dict[str, type[Tool]]:
    """Name -> class for every registered tool, the ones shipped in `coa.tools` included."""
    _import_builtin_tools()
    return dict(sorted(_TOOLS.items()))


def tool_class(name_or_path: str) -> type[Tool]:
    """The tool class a config names: a registered name ("calculator") or a class path ("pkg.mod.Class")."""
    from coa.tools.base import Tool

    if name_or_path not in _TOOLS:
        _import_builtin_tools()
    if name_or_path in _TOOLS:
        return _TOOLS[name_or_path]
    if "." not in name_or_path:
        skipped = "".join(f"; {m} did not import ({why})" for m, why in sorted(_UNIMPORTABLE.items()))
        raise ValueError(
            f"tool {name_or_path!r} is not a registered name ({', '.join(sorted(_TOOLS)) or 'none'}); "
            f"use one of them, or a class path such as 'my_pkg.tools.MyTool'{skipped}"
        )
    module_name, _, attr = name_or_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"tool class_path {name_or_path!r}: cannot import module {module_name!r} ({e})") from e
    cls = getattr(module, attr, None)
    if cls is None:
        raise ValueError(f"tool class_path {name_or_path!r}: module {module_name!r} has no attribute {attr!r}")
    if not (isinstance(cls, type) and issubclass(cls, Tool)):
        raise TypeError(f"tool class_path {name_or_path!r} is not a subclass of coa.tools.base.Tool")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise TypeError(f"tool class_path {name_or_path!r} is abstract; implement {missing}")
    return cls


def tool_from_config(spec: str | Mapping[str, Any] | Tool) -> Tool:
    """Builds the tool a config describes.

    Args:
        spec: a registered name or class path (built with no arguments); a mapping
            {"class_path": name or path, "init_args": {...}}; or a Tool, returned as is.

    >>> tool_from_config({"class_path": "calculator", "init_args": {"max_length": 50}}).call(["2*(3+4)"])
    ['14']
    """
    from coa.tools.base import Tool

    if isinstance(spec, Tool):
        return spec
    if isinstance(spec, str):
        spec = {"class_path": spec}
    if not isinstance(spec, Mapping):
        raise TypeError(f"tool spec must be a name, a class path or a mapping with class_path/init_args, got {type(spec).__name__}")
    unknown = sorted(str(k) for k in spec if k not in _SPEC_KEYS)
    if unknown:
        raise ValueError(f"tool spec: unknown key(s) {', '.join(unknown)}; expected class_path and optional init_args")
    if not isinstance(spec.get("class_path"), str):
        raise ValueError(f"tool spec {dict(spec)!r}: 'class_path' (a tool name or 'pkg.mod.Class') is missing or not a string")
    init_args = spec.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise TypeError(f"tool spec for {spec['class_path']!r}: init_args must be a mapping, got {type(init_args).__name__}")
    cls = tool_class(spec["class_path"])
    signature = inspect.signature(cls)
    try:
        signature.bind(**init_args)
    except TypeError as e:
        accepted = ", ".join(
            p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
            for p in signature.parameters.values()
        )
        raise ValueError(
            f"tool {qualified_name(cls)}: init_args {dict(init_args)!r} do not fit: "
            f"{cls.__name__} accepts {accepted or 'no arguments'} ({e})"
        ) from None
    try:
        return cls(**init_args)
    except Exception as e:
        e.add_note(f"while building tool {qualified_name(cls)} from init_args {dict(init_args)!r}")
        raise


def _import_builtin_tools() -> None:
    """Imports every module of `coa.tools` so the shipped tools are registered; one that fails to import is skipped."""
    import coa.tools

    for info in pkgutil.iter_modules(coa.tools.__path__):
        if info.name in ("base", "registry"):
            continue
        module = f"coa.tools.{info.name}"
        try:
            importlib.import_module(module)
        except ImportError as e:  # an optional extra missing: its tool is not available, and errors say why
            _UNIMPORTABLE[module] = str(e)
