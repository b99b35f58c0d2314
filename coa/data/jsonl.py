"""JSON Lines reading shared by every reader: blank lines skipped, a bad line named by file and line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path


def parse_jsonl_lines(lines: Iterable[str], path: str | Path) -> Iterator[tuple[str, object]]:
    """(`<path>:<line>`, decoded value) for each non-blank line; invalid JSON raises naming the line."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None


def iter_jsonl(path: str | Path, what: str) -> Iterator[tuple[str, object]]:
    """Like `parse_jsonl_lines` over a file; a missing file raises naming it and what it should hold."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    with open(path, encoding="utf-8") as f:
        yield from parse_jsonl_lines(f, path)
