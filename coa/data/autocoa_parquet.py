"""AutoCoA's verl RL/eval parquet files: one question per row, the AutoCoA prompt and the gold answers.

Columns (verl's RL dataset layout, as AutoCoA released it): `prompt` (chat messages; the last user
message holds the instruction, then the question after "Now, please answer the user's question
below:"), `reward_model` (`{"ground_truth": str | list[str], "style"}`; the training files hold one
string, several golds joined by "<ans_split>", the test mix a list), `data_source`, `extra_info`
(`{"index", "split"}`), and per file `_id`/`id`, `level` or `source_file`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from coa.data.qa import QAExample
from coa.prompts import extract_question
from coa.rewards.autocoa import ANSWER_SEPARATOR  # the release's training files join several golds with it
REQUIRED_COLUMNS = ("prompt", "reward_model")


@dataclass(frozen=True)
class VerlQuestion:
    """One row of a verl parquet file.

    Args:
        id: the row's `_id` or `id` (or `<file>:row <n>` when it has neither).
        question: the question, taken out of the last user message's instruction.
        golds: every accepted answer (a str ground truth becomes a one-element list).
        source_file: the benchmark the row comes from: the `source_file` column (test mix: e.g.
            "NQ_dev.json"), or the parquet file's own name when the file has no such column.
        data_source: the `data_source` column ("" when absent); AutoCoA wrote "HotpotQA" everywhere.
        meta: the other scalar columns (`level`, `ability`, `extra_info.split`, `extra_info.index`).
    """

    id: str
    question: str
    golds: list[str]
    source_file: str
    data_source: str = ""
    meta: dict = field(default_factory=dict)

    def as_qa(self) -> QAExample:
        """The same question as the evaluator's QAExample; source_file and data_source go to meta."""
        meta = {"source_file": self.source_file, "data_source": self.data_source, **self.meta}
        return QAExample(self.id, self.question, list(self.golds), meta)


def parse_golds(value: object, where: str) -> list[str]:
    """A ground truth as a list: a str, a list of str, or either joined with "<ans_split>"."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(g, str) for g in items):
        raise ValueError(
            f"{where}: field 'reward_model.ground_truth' must be a str or a list of str, got {type(value).__name__}"
        )
    golds = [part.strip() for g in items for part in g.split(ANSWER_SEPARATOR) if part.strip()]
    if not golds:
        raise ValueError(f"{where}: field 'reward_model.ground_truth' holds no answer (empty)")
    return golds


def parse_verl_row(row: dict, where: str, file_name: str) -> VerlQuestion:
    """Checks one row (as pyarrow's `to_pylist` gives it); errors name `where` (file: row n) and the field."""
    prompt = row.get("prompt")
    if not isinstance(prompt, (list, tuple)) or not prompt:
        raise ValueError(f"{where}: field 'prompt' must be a non-empty list of chat messages")
    for i, m in enumerate(prompt):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or not isinstance(m.get("role"), str):
            raise ValueError(f"{where}: field 'prompt[{i}]' needs a string 'role' and a string 'content'")
    users = [m["content"] for m in prompt if m["role"] == "user"]
    if not users:
        raise ValueError(f"{where}: field 'prompt' holds no user message (roles: {[m['role'] for m in prompt]})")
    question = extract_question(users[-1])
    if not question:
        raise ValueError(f"{where}: field 'prompt' has an empty question after the instruction")
    reward = row.get("reward_model")
    if not isinstance(reward, dict) or "ground_truth" not in reward:
        raise ValueError(f"{where}: field 'reward_model.ground_truth' missing (expected: {{'ground_truth', 'style'}})")
    extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    meta = {k: row[k] for k in ("level", "ability") if row.get(k) is not None}
    meta.update({f"extra_info.{k}": v for k, v in extra.items() if v is not None})
    row_id = row.get("_id") if row.get("_id") is not None else row.get("id")
    return VerlQuestion(
        id=str(row_id) if row_id is not None else where,
        question=question,
        golds=parse_golds(reward["ground_truth"], where),
        source_file=str(row.get("source_file") or file_name),
        data_source=str(row.get("data_source") or ""),
        meta=meta,
    )


def read_verl_parquet(path: str | Path, limit: int | None = None) -> list[VerlQuestion]:
    """Reads an AutoCoA/verl parquet file; a bad row raises naming the file, row (0-based) and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such parquet file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: not a readable parquet file ({e})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{path}: column(s) {missing} missing (expected verl's layout: prompt, reward_model, "
            f"data_source, extra_info; found: {table.column_names})"
        )
    if limit is not None:
        table = table.slice(0, limit)
    out = [parse_verl_row(row, f"{path}: row {i}", path.name) for i, row in enumerate(table.to_pylist())]
    if not out:
        raise ValueError(f"{path}: no rows in the file")
    return out
