"""Per-stage overrides merged into a stage YAML, list items included (by position), interpolations kept."""

from __future__ import annotations

from typing import Any


def merge_overrides(base: Any, overrides: dict, where: str = "") -> Any:
    """`base` (a YAML's plain dicts and lists) with `overrides` merged in; a list item is named by its position.

    >>> merge_overrides({"a": [{"x": 1}, {"y": 2}], "b": 3}, {"a": {0: {"x": 5}}, "c": 4})
    {'a': [{'x': 5}, {'y': 2}], 'b': 3, 'c': 4}

    Values that are not dicts replace what is there, and so does a dict naming another `class_path` (the new
    class's init_args start afresh); a position a list lacks raises naming where.
    """
    if isinstance(base, list):
        merged_list = list(base)
        for key, value in overrides.items():
            if not str(key).lstrip("-").isdigit() or not -len(base) <= int(key) < len(base):
                raise ValueError(f"pipeline: overrides: {where or 'the config'} is a list of {len(base)}; "
                                 f"name an item by its position (0..{len(base) - 1}), not {key!r}")
            i = int(key)
            merged_list[i] = _merge_value(base[i], value, f"{where}.{key}")
        return merged_list
    merged = dict(base) if isinstance(base, dict) else {}
    for key, value in overrides.items():
        merged[key] = _merge_value(merged.get(key), value, f"{where}.{key}" if where else str(key))
    return merged


def _merge_value(old: Any, new: Any, where: str) -> Any:
    both_dicts = isinstance(old, dict) and isinstance(new, dict)
    other_class = both_dicts and new.get("class_path", old.get("class_path")) != old.get("class_path")
    if isinstance(new, dict) and isinstance(old, (dict, list)) and not other_class:
        return merge_overrides(old, new, where)
    return new
