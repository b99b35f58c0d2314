"""Step markers: `done.json` in a finished step's folder, holding what decided its result, and the file a step writes
before it runs (what it started with), so that a killed one resumes only alike."""

from __future__ import annotations

import json
from pathlib import Path

from coa.data.atomic import atomic_open

MARKER = "done.json"


def read_marker(folder: Path) -> dict | None:
    """The marker's contents, or None while the step has not finished."""
    path = folder / MARKER
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_marker(folder: Path, fingerprint: dict, **info) -> None:
    """Written last, after the step's outputs, so a marker means they are complete."""
    with atomic_open(folder / MARKER) as f:
        json.dump({"fingerprint": fingerprint, **info}, f, indent=2)


def read_started(folder: Path, name: str) -> dict | None:
    """The fingerprint a step started with (file `name`, written before it runs), or None if it never started."""
    path = folder / name
    return json.loads(path.read_text(encoding="utf-8"))["fingerprint"] if path.is_file() else None


def write_started(folder: Path, name: str, fingerprint: dict, **info) -> None:
    """Written before a step runs, so that a killed one is resumed only with the settings it started with."""
    with atomic_open(folder / name) as f:
        json.dump({"fingerprint": fingerprint, **info}, f, indent=2)


def is_done(folder: Path, fingerprint: dict) -> bool:
    """True when a marker exists and was written with this very fingerprint."""
    marker = read_marker(folder)
    return marker is not None and marker["fingerprint"] == json.loads(json.dumps(fingerprint))


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ: {"a": {"b": 1}} vs {"a": {"b": 2}} -> ["a.b"]."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{name}.")
        elif a != b:
            keys.append(name)
    return keys
