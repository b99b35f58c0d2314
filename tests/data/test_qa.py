"""FlashRAG QA reader: golds as str or list, metadata kept, errors name file, line and field."""

import json

import pytest

from coa.data.qa import read_qa_jsonl


def test_reads_golds_and_keeps_metadata(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(
        json.dumps({"id": "a", "question": "Q1?", "golden_answers": ["x", "y"], "hops": 2}) + "\n"
        + json.dumps({"id": "b", "question": "Q2?", "golden_answers": "z"}) + "\n"
    )
    a, b = read_qa_jsonl(path)
    assert (a.golds, a.meta, b.golds) == (["x", "y"], {"hops": 2}, ["z"])
    assert len(read_qa_jsonl(path, limit=1)) == 1


@pytest.mark.parametrize(
    "row, field",
    [({"id": "a", "golden_answers": ["x"]}, "question"), ({"id": "a", "question": "Q?", "golden_answers": []}, "golden_answers")],
)
def test_bad_row_names_line_and_field(tmp_path, row, field):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"question": "ok?", "golden_answers": ["x"]}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=rf"qa.jsonl:2: field '{field}'"):
        read_qa_jsonl(path)
