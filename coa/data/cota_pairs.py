"""AutoCoA CoT+A contrastive pairs (SFT stage 1): a shared prefix, a `chosen` and a `rejected` continuation.

AutoCoA trains stage 1 with LLaMA-Factory's "sharegpt ranking" layout (its dataset
`partial_preference_coa`): a JSON array (or JSONL) of

    {"conversation": [{"from": "human", "value": USER + "<think>" + PREFIX}],
     "chosen": {"from": "gpt", "value": ...}, "rejected": {"from": "gpt", "value": ...}}

The last human message carries the assistant's reasoning so far after its last `<think>` (their
template splits there and re-opens the assistant turn with `<think>\\n` + PREFIX). `role`/`content`
keys (user/assistant) are read too, and `chosen`/`rejected` may be plain strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from coa.data.atomic import atomic_open
from coa.data.jsonl import parse_jsonl_lines
from coa.prompts import AUTOCOA_QUESTION_MARKER, PromptTemplate, extract_question

THINK_OPEN = "<think>"
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
EXPECTED = "expected: conversation, chosen, rejected"


@dataclass(frozen=True)
class ContrastivePair:
    """One decision point: the same context, continued by acting (or not) in two ways.

    Args:
        id: the row's id (or `<file>:<line|item>` when it has none).
        prompt: the user message (instruction + question), without the assistant prefix.
        question: the question, taken out of the prompt's instruction.
        prefix: the assistant's reasoning so far, after its opening `<think>` ("" at the first step).
        chosen: the preferred continuation (an action, or thinking that ends right).
        rejected: the other continuation.
        history: earlier turns, each {"role", "content"}; empty for AutoCoA's single-turn pairs.
    """

    id: str
    prompt: str
    question: str
    prefix: str
    chosen: str
    rejected: str
    history: tuple[dict, ...] = ()


def _message(m: object, where: str, name: str) -> dict[str, str]:
    """{"role", "content"} from a sharegpt ({"from","value"}) or chat ({"role","content"}) message."""
    if isinstance(m, dict):
        role, content = m.get("from", m.get("role")), m.get("value", m.get("content"))
        if role in ROLES and isinstance(content, str):
            return {"role": ROLES[role], "content": content}
    raise ValueError(
        f"{where}: field '{name}' must be a message {{'from': human|gpt|system, 'value': str}} "
        f"(or {{'role', 'content'}}), got {str(m)[:80]!r}"
    )


def split_prefix(user_content: str) -> tuple[str, str]:
    """(prompt, prefix): the text before and after the last `<think>` that follows the question marker."""
    start = user_content.find(AUTOCOA_QUESTION_MARKER)  # the instruction itself mentions `<think></think>`
    cut = user_content.rfind(THINK_OPEN, max(start, 0))
    if cut < 0:
        return user_content, ""
    return user_content[:cut], user_content[cut + len(THINK_OPEN):]


def parse_pair_row(row: object, where: str) -> ContrastivePair:
    """Checks one decoded pair; errors name `where` (file:line or file: item n) and the field."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object ({EXPECTED}), got {type(row).__name__}")
    for name in ("conversation", "chosen", "rejected"):
        if name not in row:
            raise ValueError(f"{where}: field '{name}' missing ({EXPECTED})")
    conversation = row["conversation"]
    if not isinstance(conversation, list) or not conversation:
        raise ValueError(f"{where}: field 'conversation' must be a non-empty list of messages")
    messages = [_message(m, where, f"conversation[{i}]") for i, m in enumerate(conversation)]
    if messages[-1]["role"] != "user":
        raise ValueError(f"{where}: field 'conversation' must end with the human turn that holds the prefix")
    ends = {}
    for name in ("chosen", "rejected"):
        value = row[name]
        ends[name] = value if isinstance(value, str) else _message(value, where, name)["content"]
        if not ends[name].strip():
            raise ValueError(f"{where}: field '{name}' is empty")
    prompt, prefix = split_prefix(messages[-1]["content"])
    return ContrastivePair(
        id=str(row.get("id", where)),
        prompt=prompt,
        question=extract_question(prompt),
        prefix=prefix,
        chosen=ends["chosen"],
        rejected=ends["rejected"],
        history=tuple(messages[:-1]),
    )


def read_cota_pairs(path: str | Path) -> list[ContrastivePair]:
    """Reads a pair file (a JSON array, or JSONL); a bad pair raises naming the file, item/line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CoT+A pair file")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        out = [parse_pair_row(row, f"{path}: item {i}") for i, row in enumerate(items)]
    else:
        out = [parse_pair_row(row, where) for where, row in parse_jsonl_lines(text.splitlines(), path)]
    if not out:
        raise ValueError(f"{path}: no pairs in the file")
    return out


def write_cota_pairs(path: str | Path, pairs: list[ContrastivePair]) -> None:
    """Writes pairs as AutoCoA's JSON array (sharegpt tags), atomically; `read_cota_pairs` reads it back."""
    role_tag = {"user": "human", "assistant": "gpt", "system": "system"}
    rows = [
        {
            "id": p.id,
            "conversation": [{"from": role_tag[m["role"]], "value": m["content"]} for m in p.history]
            + [{"from": "human", "value": p.prompt + THINK_OPEN + p.prefix}],
            "chosen": {"from": "gpt", "value": p.chosen},
            "rejected": {"from": "gpt", "value": p.rejected},
        }
        for p in pairs
    ]
    with atomic_open(path) as f:
        json.dump(rows, f, ensure_ascii=False, indent=1)


def pair_messages(pair: ContrastivePair, template: PromptTemplate | None = None) -> list[dict[str, str]]:
    """The chat before the assistant turn: the file's own (history + prompt), or `template` rebuilt on the question."""
    if template is not None:
        return template.messages(pair.question)
    return [dict(m) for m in pair.history] + [{"role": "user", "content": pair.prompt}]
