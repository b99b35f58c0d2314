"""The stage tree: the rows of Table 1 as stage paths, each shared prefix trained once."""

from __future__ import annotations

from dataclasses import dataclass

STAGES = ("sft1", "sft2", "sft3", "rl1", "rl2")
SEPARATOR = "-"
BASE_ROW = "base"  # the untrained base model, evaluated like every row (prompted as an agent, closed-book, naive RAG)


@dataclass(frozen=True)
class StageNode:
    """One stage run: the last stage of `path`, started from the export of `path[:-1]` (the base model when empty).

    Args:
        path: stage names from the base model to this stage, e.g. ("sft1", "sft2", "rl2").
    """

    path: tuple[str, ...]

    @property
    def stage(self) -> str:
        return self.path[-1]

    @property
    def key(self) -> str:
        """The run's folder name, e.g. "sft1-sft2-rl2"; "base" for the untrained base model."""
        return SEPARATOR.join(self.path) or BASE_ROW

    @property
    def parent(self) -> StageNode | None:
        return StageNode(self.path[:-1]) if len(self.path) > 1 else None


def parse_row(row: str) -> tuple[str, ...]:
    """ "sft1-sft2-rl2" -> ("sft1", "sft2", "rl2"), "base" -> (); unknown or repeated stages raise naming the row."""
    if row.strip() == BASE_ROW:
        return ()
    path = tuple(s.strip() for s in row.split(SEPARATOR))
    unknown = [s for s in path if s not in STAGES]
    if unknown or not row.strip():
        raise ValueError(f"rows: {row!r} has unknown stages {unknown}; a row joins stages from {list(STAGES)} with '-', "
                         f"or is '{BASE_ROW}' (the base model before any agent training)")
    if len(set(path)) != len(path):
        raise ValueError(f"rows: {row!r} repeats a stage; each stage appears once in a row")
    return path


def row_label(path: tuple[str, ...]) -> str:
    """The paper's name of a row: ("sft1", "sft2", "rl1", "rl2") -> "SFT1&2+RL1&2"; () -> "base"."""
    parts = []
    for kind in ("sft", "rl"):
        numbers = [s[len(kind):] for s in path if s.startswith(kind)]
        if numbers:
            parts.append(kind.upper() + "&".join(numbers))
    return "+".join(parts) or BASE_ROW


def stage_tree(rows: list[str]) -> list[StageNode]:
    """Every stage run the rows need, once each, parents before children (in the rows' order).

    >>> [n.key for n in stage_tree(["sft2", "sft1-sft2", "sft1-sft2-rl2"])]
    ['sft2', 'sft1', 'sft1-sft2', 'sft1-sft2-rl2']
    """
    nodes: dict[tuple[str, ...], StageNode] = {}
    for row in rows:
        path = parse_row(row)
        for end in range(1, len(path) + 1):
            nodes.setdefault(path[:end], StageNode(path[:end]))
    return list(nodes.values())


def rows_served(node: StageNode, rows: list[str]) -> list[str]:
    """The labels of the rows whose final model is built on `node`."""
    return [row_label(p) for p in map(parse_row, rows) if p[: len(node.path)] == node.path]
