"""AutoCoA verl parquet: the three released files read whole; golds as str or list; errors name file, row, field."""

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from coa.data.autocoa_parquet import read_verl_parquet
from coa.prompts import AUTOCOA_QUESTION_MARKER, PromptTemplate

# Row counts and per-benchmark counts from the release (shared/data/autocoa/README.md).
TEST_MIX = {"NQ_dev.json": 500, "TriviaQA_dev.json": 501, "HotpotQA_dev.json": 500, "2WIKI_dev.json": 500,
            "MuSiQue_dev.json": 500, "Bamboogle_dev.json": 125, "Fanout_dev.json": 310}


@pytest.mark.parametrize(
    "name, counts",
    [("hotpotqa_train.parquet", {"hotpotqa_train.parquet": 6144}),
     ("hotpotqa_dev.parquet", {"hotpotqa_dev.parquet": 400}),
     ("test.parquet", TEST_MIX)],
)
def test_reads_every_row_of_the_real_files(name, counts, real_autocoa):
    rows = read_verl_parquet(real_autocoa / name)
    assert dict(Counter(r.source_file for r in rows)) == counts
    # ids repeat across the mix's benchmarks; TriviaQA's 501st row repeats dev_2063 (the release's own duplicate)
    repeats = [k for k, n in Counter((r.source_file, r.id) for r in rows).items() if n > 1]
    assert repeats == ([("TriviaQA_dev.json", "dev_2063")] if name == "test.parquet" else [])
    for r in rows:
        assert r.question and AUTOCOA_QUESTION_MARKER not in r.question and "\\boxed" not in r.question
        assert r.golds and all(isinstance(g, str) and g for g in r.golds)
    assert rows[0].data_source == "HotpotQA"


def test_first_rows_hold_the_released_questions_and_answers(real_autocoa):
    train = read_verl_parquet(real_autocoa / "hotpotqa_train.parquet", limit=1)[0]
    assert train.question.startswith("Who is an English author, known for her award-winning novel")
    assert train.golds == ["Joanne Michèle Sylvie Harris"]  # a str ground truth becomes a list
    assert train.meta["level"] == "easy" and train.meta["extra_info.split"] == "train"
    mix = read_verl_parquet(real_autocoa / "test.parquet")
    assert Counter(len(r.golds) for r in mix)[1] == 2024  # lists of 1..n accepted answers
    qa = mix[0].as_qa()
    assert (qa.id, qa.golds, qa.meta["source_file"]) == ("dev_3872", ["no"], "2WIKI_dev.json")


def write(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def row(ground_truth, question: str = "Who wrote Songs of Vale?", **extra) -> dict:
    return {"prompt": PromptTemplate("autocoa").messages(question),
            "reward_model": {"ground_truth": ground_truth, "style": "rule"}, **extra}


def test_golds_joined_with_ans_split_become_a_list(tmp_path):
    path = write(tmp_path / "a.parquet", [row("Ann Lee<ans_split> A. Lee", id="q0"), row("Bo", id="q1")])
    first, second = read_verl_parquet(path)
    assert (first.id, first.question, first.golds) == ("q0", "Who wrote Songs of Vale?", ["Ann Lee", "A. Lee"])
    assert (second.golds, second.source_file) == (["Bo"], "a.parquet")  # no source_file column: the file's name
    path = write(tmp_path / "b.parquet", [row(["x<ans_split>y", "z"], source_file="NQ_dev.json")])
    assert read_verl_parquet(path)[0].golds == ["x", "y", "z"]


@pytest.mark.parametrize(
    "bad, field",
    [(row(""), "reward_model.ground_truth"),
     ({**row("x"), "prompt": [{"role": "system", "content": "hi"}]}, "prompt"),
     ({**row("x"), "reward_model": {"style": "rule"}}, "reward_model.ground_truth")],
)
def test_bad_row_names_file_row_and_field(tmp_path, bad, field):
    path = write(tmp_path / "bad.parquet", [row("fine"), bad])
    with pytest.raises(ValueError, match=rf"bad.parquet: row 1: field '{field}"):
        read_verl_parquet(path)


def test_missing_column_and_non_parquet_file_are_named(tmp_path):
    path = write(tmp_path / "cols.parquet", [{"prompt": "x", "answer": "y"}])
    with pytest.raises(ValueError, match=r"cols.parquet: column\(s\) \['reward_model'\] missing"):
        read_verl_parquet(path)
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(ValueError, match="junk.parquet: not a readable parquet file"):
        read_verl_parquet(junk)
