"""AutoCoA messages JSONL (CoA and CoT trajectories): one chat per line, the assistant turn last."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coa.data.jsonl import iter_jsonl
from coa.prompts import extract_question


@dataclass(frozen=True)
class Trajectory:
    """One SFT example: the question and the assistant text that answers it.

    Args:
        id: the row's id (or `<file>:<line>` when the row has none).
        question: the question, taken out of the user message's instruction.
        response: the assistant's whole turn (think, actions, observations, answer).
        type: "coa" (uses tools) or "cot" (pure reasoning); "" when the file does not say.
    """

    id: str
    question: str
    response: str
    type: str = ""


def parse_messages_row(row: object, where: str) -> Trajectory:
    """Checks one decoded line; errors name `where` (file:line) and the field."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object with 'messages', got {type(row).__name__}")
    messages = row.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        raise ValueError(f"{where}: field 'messages' must be a list of at least a user and an assistant turn")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"{where}: field 'messages[{i}]' needs 'role' (system/user/assistant) and a string 'content'")
    users = [m for m in messages if m["role"] == "user"]
    if not users or messages[-1]["role"] != "assistant":
        raise ValueError(f"{where}: field 'messages' must hold a user turn and end with the assistant turn")
    return Trajectory(
        id=str(row.get("id", where)),
        question=extract_question(users[-1]["content"]),
        response=messages[-1]["content"],
        type=str(row.get("type", "")),
    )


def read_messages(path: str | Path) -> list[Trajectory]:
    """Reads a messages JSONL file; a bad line raises naming the file, line and field."""
    out = [parse_messages_row(row, where) for where, row in iter_jsonl(path, "messages JSONL")]
    if not out:
        raise ValueError(f"{path}: no trajectories in the file")
    return out
