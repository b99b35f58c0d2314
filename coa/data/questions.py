"""Questions with gold answers from any supported file, chosen by extension: QA JSONL or verl parquet."""

from __future__ import annotations

from pathlib import Path

from coa.data.autocoa_parquet import read_verl_parquet
from coa.data.qa import QAExample, read_qa_jsonl

READERS = {".jsonl": "FlashRAG QA JSONL (id, question, golden_answers)", ".parquet": "verl parquet (prompt, reward_model)"}


def read_questions(path: str | Path, limit: int | None = None) -> list[QAExample]:
    """Questions from a QA JSONL or a verl parquet file (AutoCoA's RL and test files as they are).

    Raises ValueError naming the file and the readers when the extension is neither.
    """
    suffix = Path(path).suffix
    if suffix == ".jsonl":
        return read_qa_jsonl(path, limit)
    if suffix == ".parquet":
        return [q.as_qa() for q in read_verl_parquet(path, limit)]
    known = "; ".join(f"{k}: {v}" for k, v in READERS.items())
    raise ValueError(f"{path}: no reader for '{suffix or '(no extension)'}' files; known: {known}")
