"""Benchmarks in a question set: which benchmark each question comes from, and the first N of each.

AutoCoA's test mix (`test.parquet`) holds seven benchmarks, told apart by the `source_file` column
("NQ_dev.json", "2WIKI_dev.json", ...); FlashRAG ships one JSONL per benchmark ("nq/test.jsonl"),
so there the file itself is the source. Either way the source lands in `QAExample.meta["source_file"]`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import PurePath

from coa.data.qa import QAExample
from coa.data.questions import read_questions

SOURCE_FIELD = "source_file"
_SPLITS = ("train", "dev", "test", "val", "validation")
_SPLIT_SUFFIX = re.compile(r"[_.-](?:" + "|".join(_SPLITS) + r")$", re.IGNORECASE)


def benchmark_name(source: str) -> str:
    """A benchmark's short name from its source file: the split and extensions go.

    >>> [benchmark_name(s) for s in ("NQ_dev.json", "2WIKI_dev.json", "data/nq/test.jsonl", "bamboogle.jsonl")]
    ['NQ', '2WIKI', 'nq', 'bamboogle']
    """
    path = PurePath(source)
    stem = path.name.split(".")[0] or path.name
    if stem.lower() in _SPLITS and path.parent.name:  # FlashRAG's layout: <benchmark>/<split>.jsonl
        return path.parent.name
    return _SPLIT_SUFFIX.sub("", stem) or stem


def source_of(meta: Mapping[str, object]) -> str | None:
    """The benchmark a question comes from (`benchmark_name` of its meta's source file), or None when it has none."""
    source = meta.get(SOURCE_FIELD)
    return benchmark_name(str(source)) if source else None


def first_per_source(examples: Sequence[QAExample], n: int) -> list[QAExample]:
    """The first `n` examples of each source, in file order; examples without a source count as one source.

    Raises ValueError when `n` < 1.
    """
    if n < 1:
        raise ValueError(f"per_source={n} must be >= 1 (questions kept per benchmark)")
    taken: Counter[str | None] = Counter()
    kept = []
    for e in examples:
        source = source_of(e.meta)
        if taken[source] < n:
            taken[source] += 1
            kept.append(e)
    return kept


def read_benchmarks(paths: str | Sequence[str], limit: int | None = None, per_source: int | None = None) -> list[QAExample]:
    """Questions from one or more files (QA JSONL or verl parquet, by extension).

    With several files, a row that names no source gets its file as the source, so the table has a row
    per file (FlashRAG: one file per benchmark).

    Args:
        paths: one path or several.
        limit: the first `limit` questions of each file.
        per_source: then the first `per_source` questions of each source (`first_per_source`).
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    if not paths:
        raise ValueError("eval: give at least one question file")
    examples = []
    for path in paths:
        rows = read_questions(path, limit)
        if len(paths) > 1:
            rows = [e if e.meta.get(SOURCE_FIELD) else replace(e, meta={**e.meta, SOURCE_FIELD: str(path)}) for e in rows]
        examples += rows
    return first_per_source(examples, per_source) if per_source is not None else examples
