"""BM25 search over a local corpus (FlashRAG's JSONL layout: {"id", "contents"} per line)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rank_bm25 import BM25Okapi

from coa.tools.base import Tool

_WORD = re.compile(r"\w+")


def bm25_tokenize(text: str) -> list[str]:
    """Lower-cased word tokens: the same rule for passages and queries."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Passage:
    id: str
    contents: str
    score: float = 0.0


def read_corpus(path: str | Path) -> list[Passage]:
    """Reads a corpus JSONL; errors name the file, line and field."""
    passages = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            for field in ("id", "contents"):
                if field not in row:
                    raise ValueError(f"{path}:{lineno}: field '{field}' missing (expected: id, contents)")
            passages.append(Passage(str(row["id"]), str(row["contents"])))
    if not passages:
        raise ValueError(f"{path}: corpus is empty")
    return passages


def format_passages(passages: list[Passage]) -> str:
    """The observation text for a list of passages: numbered, one after another."""
    return " ".join(f"({i}) {p.contents}" for i, p in enumerate(passages, 1))


class BM25Search(Tool):
    """Okapi BM25 (rank-bm25) over a corpus file; the observation holds the top-k passages.

    Args:
        corpus_path: JSONL with one {"id", "contents"} object per line.
        topk: passages per query (AutoCoA used 3).
    """

    name = "search"

    def __init__(self, corpus_path: str, topk: int = 3) -> None:
        if topk < 1:
            raise ValueError(f"BM25Search: topk={topk} must be >= 1")
        self.topk = topk
        self.passages = read_corpus(corpus_path)
        self.index = BM25Okapi([bm25_tokenize(p.contents) for p in self.passages])

    def search(self, query: str, topk: int | None = None) -> list[Passage]:
        """The `topk` best passages for `query`, best first; ties keep corpus order."""
        k = topk or self.topk
        terms = bm25_tokenize(query)
        if not terms:
            return []
        scores = self.index.get_scores(terms)
        best = np.argsort(-scores, kind="stable")[:k]
        return [Passage(self.passages[i].id, self.passages[i].contents, float(scores[i])) for i in best]

    def call(self, arguments: list[str]) -> list[str]:
        return [format_passages(self.search(q)) or "No results." for q in arguments]
