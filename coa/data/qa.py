"""FlashRAG QA JSONL: `{"id", "question", "golden_answers", ...}` per line; extra fields are kept as metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coa.data.jsonl import iter_jsonl


@dataclass(frozen=True)
class QAExample:
    """A question with its gold answers.

    Args:
        id: the row's id.
        question: the question text.
        golds: every accepted answer.
        meta: the row's other fields (the embedded world writes kind, hops, unseen_entity).
    """

    id: str
    question: str
    golds: list[str]
    meta: dict = field(default_factory=dict)


def parse_qa_row(row: object, where: str) -> QAExample:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for name in ("question", "golden_answers"):
        if name not in row:
            raise ValueError(f"{where}: field '{name}' missing (expected: id, question, golden_answers)")
    if not isinstance(row["question"], str) or not row["question"].strip():
        raise ValueError(f"{where}: field 'question' must be a non-empty string")
    golds = row["golden_answers"]
    golds = [golds] if isinstance(golds, str) else golds
    if not isinstance(golds, list) or not golds or not all(isinstance(g, (str, int, float)) for g in golds):
        raise ValueError(f"{where}: field 'golden_answers' must be a string or a non-empty list of strings")
    meta = {k: v for k, v in row.items() if k not in ("id", "question", "golden_answers")}
    return QAExample(str(row.get("id", where)), row["question"], [str(g) for g in golds], meta)


def read_qa_jsonl(path: str | Path, limit: int | None = None) -> list[QAExample]:
    """Reads a FlashRAG QA file; a bad line raises naming the file, line and field."""
    out: list[QAExample] = []
    for where, row in iter_jsonl(path, "QA JSONL"):
        out.append(parse_qa_row(row, where))
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise ValueError(f"{path}: no questions in the file")
    return out
