"""Benchmarks in a question set: names from source files, the first N of each, several files at once."""

import json

import pytest

from coa.benchmarks import benchmark_name, first_per_source, read_benchmarks
from coa.data.qa import QAExample

AUTOCOA_SOURCES = {"2WIKI", "Bamboogle", "Fanout", "HotpotQA", "MuSiQue", "NQ", "TriviaQA"}


@pytest.mark.parametrize("source, name", [
    ("NQ_dev.json", "NQ"), ("2WIKI_dev.json", "2WIKI"), ("MuSiQue_dev.json", "MuSiQue"),
    ("/data/flashrag/hotpotqa/dev.jsonl", "hotpotqa"), ("nq/test.jsonl", "nq"), ("bamboogle.jsonl", "bamboogle"),
    ("test.parquet", "test"), ("rl_train.parquet", "rl"),
])
def test_benchmark_name(source, name):
    assert benchmark_name(source) == name


def example(i, source=None):
    return QAExample(str(i), f"q{i}?", ["a"], {"source_file": source} if source else {})


def test_first_per_source_keeps_file_order():
    examples = [example(0, "A_dev.json"), example(1, "B_dev.json"), example(2, "A_dev.json"), example(3, "A_dev.json"),
                example(4), example(5), example(6, "B_dev.json")]
    assert [e.id for e in first_per_source(examples, 2)] == ["0", "1", "2", "4", "5", "6"]
    assert [e.id for e in first_per_source(examples, 1)] == ["0", "1", "4"]
    with pytest.raises(ValueError, match="per_source=0 must be >= 1"):
        first_per_source(examples, 0)


def test_autocoa_test_mix_twenty_of_each_source(real_autocoa):
    examples = read_benchmarks(str(real_autocoa / "test.parquet"), per_source=20)
    names = [benchmark_name(e.meta["source_file"]) for e in examples]
    assert len(examples) == 140 and {n: names.count(n) for n in set(names)} == {s: 20 for s in AUTOCOA_SOURCES}


def test_several_files_each_a_source(tmp_path):
    paths = []
    for name, n in (("nq", 3), ("hotpotqa", 2)):
        path = tmp_path / name / "test.jsonl"
        path.parent.mkdir()
        path.write_text("".join(json.dumps({"id": f"{name}{i}", "question": "q?", "golden_answers": ["a"]}) + "\n" for i in range(n)))
        paths.append(str(path))
    examples = read_benchmarks(paths, per_source=2)
    assert [(e.id, benchmark_name(e.meta["source_file"])) for e in examples] == [
        ("nq0", "nq"), ("nq1", "nq"), ("hotpotqa0", "hotpotqa"), ("hotpotqa1", "hotpotqa")]
    assert "source_file" not in read_benchmarks(paths[0])[0].meta  # one file: no source of its own
