"""Messages JSONL reader: the real AutoCoA files' layout, and errors naming file, line and field."""

import json
from pathlib import Path

import pytest

from coa.data.messages import read_messages
from coa.prompts import AUTOCOA_INSTRUCTION


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_question_out_of_the_autocoa_instruction(tmp_path):
    row = {"id": "q1", "type": "coa", "messages": [
        {"role": "user", "content": AUTOCOA_INSTRUCTION.replace("{question}", "Who is Ada?")},
        {"role": "assistant", "content": "<think> x </think> \\boxed{y}"},
    ]}
    (t,) = read_messages(write_lines(tmp_path / "a.jsonl", [json.dumps(row)]))
    assert (t.id, t.question, t.response, t.type) == ("q1", "Who is Ada?", "<think> x </think> \\boxed{y}", "coa")


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"a.jsonl:2: not valid JSON"),
        (json.dumps({"id": 1}), r"a.jsonl:2: field 'messages'"),
        (json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}), r"a.jsonl:2: field 'messages\[1\]'"),
        (json.dumps({"messages": [{"role": "assistant", "content": "q"}, {"role": "user", "content": "a"}]}), r"a.jsonl:2: field 'messages' must"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path, line, message):
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    path = write_lines(tmp_path / "a.jsonl", [good, line])
    with pytest.raises(ValueError, match=message):
        read_messages(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_messages(tmp_path / "nope.jsonl")
