"""Classes of one kind (tools, rewards) by name: subclasses register themselves; configs build one by name or class path.

A config names a class LightningCLI-style, or by its registered name:

    tool: calculator
    tool: {class_path: coa.tools.bm25.BM25Search, init_args: {corpus_path: corpus.jsonl, topk: 3}}
    reward: {class_path: my_pkg.rewards.Strict, init_args: {format_penalty: 0.5}}   # a class outside coa

Importing a class path imports its module, which registers the class. Names of classes shipped in the
registry's package resolve without an import; a class elsewhere is found by name once its module is imported.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")
SPEC_KEYS = ("class_path", "init_args")


def qualified_name(cls: type) -> str:
    """`module.QualName`: two definitions of one class (a module imported again) share it."""
    return f"{cls.__module__}.{cls.__qualname__}"


class Registry(Generic[T]):
    """Name -> subclass of `base`, for one kind of component; the base's `__init_subclass__` calls `register`.

    Args:
        base: the class every registered class subclasses (`Tool`, `Reward`).
        kind: the word errors use for it ("tool", "reward").
        package: the package whose modules hold the shipped classes ("coa.tools"); all are imported
            before a name lookup fails, so shipped names work without an import.
    """

    def __init__(self, base: type[T], kind: str, package: str) -> None:
        self.base, self.kind, self.package = base, kind, package
        self.classes: dict[str, type[T]] = {}
        self.unimportable: dict[str, str] = {}  # module -> why it failed to import (a missing optional extra)

    def register(self, cls: type[T]) -> None:
        """Registers `cls` under `cls.name`.

        Raises:
            TypeError: `cls.name` is not a non-empty string.
            ValueError: another class already holds the name (a new definition of the same class replaces it).
        """
        name = cls.__dict__.get("name")
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"{self.kind} {qualified_name(cls)}: name={name!r} must be a non-empty string")
        held = self.classes.get(name)
        if held is not None and qualified_name(held) != qualified_name(cls):
            raise ValueError(
                f"{self.kind} name {name!r} is taken by {qualified_name(held)}; "
                f"give {qualified_name(cls)} another name (class attribute `name`)"
            )
        self.classes[name] = cls

    def registered(self) -> dict[str, type[T]]:
        """Name -> class for every registered class, the shipped ones included."""
        self._import_package()
        return dict(sorted(self.classes.items()))

    def lookup(self, name_or_path: str) -> type[T]:
        """The class a config names: a registered name ("calculator") or a class path ("pkg.mod.Class")."""
        if name_or_path not in self.classes:
            self._import_package()
        if name_or_path in self.classes:
            return self.classes[name_or_path]
        if "." not in name_or_path:
            skipped = "".join(f"; {m} did not import ({why})" for m, why in sorted(self.unimportable.items()))
            raise ValueError(
                f"{self.kind} {name_or_path!r} is not a registered name ({', '.join(sorted(self.classes)) or 'none'}); "
                f"use one of them, or a class path such as 'my_pkg.{self.kind}s.My{self.kind.title()}'{skipped}"
            )
        module_name, _, attr = name_or_path.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(
                f"{self.kind} class_path {name_or_path!r}: cannot import module {module_name!r} ({e})"
            ) from e
        cls = getattr(module, attr, None)
        if cls is None:
            raise ValueError(
                f"{self.kind} class_path {name_or_path!r}: module {module_name!r} has no attribute {attr!r}"
            )
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{self.kind} class_path {name_or_path!r} is not a subclass of {qualified_name(self.base)}")
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(cls.__abstractmethods__))
            raise TypeError(f"{self.kind} class_path {name_or_path!r} is abstract; implement {missing}")
        return cls

    def build(self, spec: str | Mapping[str, Any] | T) -> T:
        """Builds the instance a config describes.

        Args:
            spec: a registered name or class path (built with no arguments); a mapping
                {"class_path": name or path, "init_args": {...}}; or an instance of `base`, returned as is.
        """
        if isinstance(spec, self.base):
            return spec
        if isinstance(spec, str):
            spec = {"class_path": spec}
        if not isinstance(spec, Mapping):
            raise TypeError(
                f"{self.kind} spec must be a name, a class path or a mapping with class_path/init_args, "
                f"got {type(spec).__name__}"
            )
        unknown = sorted(str(k) for k in spec if k not in SPEC_KEYS)
        if unknown:
            raise ValueError(
                f"{self.kind} spec: unknown key(s) {', '.join(unknown)}; expected class_path and optional init_args"
            )
        if not isinstance(spec.get("class_path"), str):
            raise ValueError(
                f"{self.kind} spec {dict(spec)!r}: 'class_path' (a {self.kind} name or 'pkg.mod.Class') "
                "is missing or not a string"
            )
        init_args = spec.get("init_args") or {}
        if not isinstance(init_args, Mapping):
            raise TypeError(
                f"{self.kind} spec for {spec['class_path']!r}: init_args must be a mapping, got {type(init_args).__name__}"
            )
        cls = self.lookup(spec["class_path"])
        signature = inspect.signature(cls)
        try:
            signature.bind(**init_args)
        except TypeError as e:
            accepted = ", ".join(
                p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
                for p in signature.parameters.values()
            )
            raise ValueError(
                f"{self.kind} {qualified_name(cls)}: init_args {dict(init_args)!r} do not fit: "
                f"{cls.__name__} accepts {accepted or 'no arguments'} ({e})"
            ) from None
        try:
            return cls(**init_args)
        except Exception as e:
            e.add_note(f"while building {self.kind} {qualified_name(cls)} from init_args {dict(init_args)!r}")
            raise

    def _import_package(self) -> None:
        """Imports every module of `package` so the shipped classes are registered; one that fails to import is skipped."""
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            module = f"{self.package}.{info.name}"
            try:
                importlib.import_module(module)
            except ImportError as e:  # an optional extra missing: its class is not available, and errors say why
                self.unimportable[module] = str(e)
