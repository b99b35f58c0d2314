"""The embedded world: byte-identical per seed, held-out splits, oracle observations are real BM25 results."""

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from coa.commands.world import main as world_main
from coa.data.autocoa_parquet import read_verl_parquet
from coa.prompts import PromptTemplate
from coa.rewards.autocoa import autocoa_reward
from coa.tools.bm25 import BM25Search, format_passages
from coa.world.build import build_world, verl_table
from coa.world.config import WorldConfig

SMALL = dict(persons=40, cities=10, countries=5, companies=10, books=20, train=200, dev=20, test=20, topk=1)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        world_main(["build", "--out", str(tmp_path / name), "--seed", str(seed), "--persons", "40", "--cities", "10",
                    "--countries", "5", "--companies", "10", "--books", "20", "--train", "100", "--dev", "10", "--test", "10"])
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert set(a) >= {"corpus.jsonl", "qa/train.jsonl", "qa/test.parquet", "sft/train.jsonl", "world_config.jsonl"}
    assert a == b
    assert a["corpus.jsonl"] != c["corpus.jsonl"]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def test_splits_hold_every_kind_and_test_asks_about_unseen_entities(small_world):
    train, test = rows(small_world / "qa" / "train.jsonl"), rows(small_world / "qa" / "test.jsonl")
    assert {r["kind"] for r in test} == {"single", "chain2", "chain3", "chain4", "comparison", "no_search"}
    assert {r["hops"] for r in test} == {0, 1, 2, 3, 4}
    assert any(r["unseen_entity"] for r in test) and not any(r["unseen_entity"] for r in train)
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    subjects_in_train = " ".join(r["question"] for r in train)
    unseen = [r for r in test if r["unseen_entity"] and r["kind"] in ("single", "chain2")]
    for r in unseen:  # the subject's name never appears in a training question
        name = re.match(r"What is (.+?)'s ", r["question"]).group(1)
        assert name not in subjects_in_train


def test_answers_are_not_in_the_question_unless_no_search(small_world):
    for r in rows(small_world / "qa" / "test.jsonl"):
        inside = any(a.lower() in r["question"].lower() for a in r["golden_answers"])
        assert inside == (r["kind"] in ("no_search", "comparison")), r


def test_oracle_observations_are_the_real_bm25_results(small_world):
    search = BM25Search(str(small_world / "corpus.jsonl"), topk=1)
    sft = rows(small_world / "sft" / "train.jsonl")
    checked = 0
    for row in sft[:50]:
        text = row["messages"][-1]["content"]
        for query, observation in re.findall(r"<begin_search> (.+?) </end_search> <search_result> (.+?) </search_result>", text):
            assert observation == format_passages(search.search(query))
            checked += 1
    assert checked > 20
    cot = [r for r in sft if r["type"] == "cot"]
    assert cot and all("<begin_search>" not in r["messages"][-1]["content"] for r in cot)
    assert all(r["messages"][-1]["content"].rstrip().endswith("}") for r in sft)


def test_parquet_has_the_verl_layout_of_autocoa_files(small_world):
    table = pq.read_table(small_world / "qa" / "test.parquet")
    assert {"data_source", "prompt", "ability", "reward_model", "extra_info"} <= set(table.column_names)
    first = table.slice(0, 1).to_pylist()[0]
    assert first["prompt"][0]["role"] == "user" and "<begin_search>" in first["prompt"][0]["content"]
    qa = rows(small_world / "qa" / "test.jsonl")
    assert first["reward_model"]["ground_truth"] == "<ans_split>".join(qa[0]["golden_answers"])
    assert [r.golds for r in read_verl_parquet(small_world / "qa" / "test.parquet")] == [r["golden_answers"] for r in qa]


def test_parquet_ground_truth_is_one_string_as_the_release_stores_it():
    row = {"id": "t-0", "question": "Where?", "golden_answers": ["Lisbon", "Lisboa"], "kind": "single", "hops": 1,
           "unseen_entity": False}
    table = verl_table([row], "test", PromptTemplate("short"))
    assert table.schema.field("reward_model").type.field("ground_truth").type == "string"
    ground_truth = table.to_pylist()[0]["reward_model"]["ground_truth"]
    assert ground_truth == "Lisbon<ans_split>Lisboa"
    assert autocoa_reward("<think> x </think> \\boxed{Lisboa}", ground_truth) == 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [({"mix": {"chain9": 1.0}}, "mix has unknown kinds"), ({"unseen_fraction": 1.5}, "unseen_fraction"), ({"books": 1}, "books=1"),
     ({"rl": 10}, "need rl_fraction"), ({"rl_fraction": 1.0}, "rl_fraction")],
)
def test_bad_world_config_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WorldConfig(**kwargs)


def test_a_failed_build_leaves_no_half_written_file(tmp_path, monkeypatch):
    import coa.world.build as build

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build.pq, "write_table", explode)
    with pytest.raises(RuntimeError):
        build_world(tmp_path / "w", WorldConfig(**SMALL))
    leftovers = [p.name for p in (tmp_path / "w").rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == [] and not (tmp_path / "w" / "qa" / "train.parquet").exists()


def subject_names(rows: list[dict]) -> set[str]:
    """The names a question is about: the chain's subject, or both sides of a comparison."""
    names = set()
    for r in rows:
        chain = re.match(r"What is (.+?)'s ", r["question"])
        if chain:
            names.add(chain.group(1))
        pair = re.match(r".+ earlier, (.+) or (.+)\?$", r["question"])
        if pair:
            names.update(pair.groups())
    return names


def test_rl_split_asks_about_entities_no_other_split_is_about(tmp_path):
    config = dict(SMALL, train=150, dev=20, test=40, rl=60, rl_fraction=0.3, unseen_fraction=0.2)
    build_world(tmp_path, WorldConfig(**config))
    rl = rows(tmp_path / "qa" / "rl.jsonl")
    assert len(rl) == 60 and {r["id"] for r in rl} == {f"rl-{i}" for i in range(60)}
    assert read_verl_parquet(tmp_path / "qa" / "rl.parquet")[0].golds == rl[0]["golden_answers"]
    rl_names = subject_names(rl)
    assert len(rl_names) > 10
    for split in ("train", "dev", "test"):
        assert not rl_names & subject_names(rows(tmp_path / "qa" / f"{split}.jsonl")), split
    assert not {r["question"] for r in rl} & {r["question"] for r in rows(tmp_path / "qa" / "train.jsonl")}


def test_a_world_without_rl_split_is_unchanged_by_the_rl_settings(tmp_path):
    build_world(tmp_path / "plain", WorldConfig(**SMALL))
    build_world(tmp_path / "zero", WorldConfig(**SMALL, rl=0, rl_fraction=0.0))
    assert files(tmp_path / "plain") == files(tmp_path / "zero")
    assert not (tmp_path / "plain" / "qa" / "rl.jsonl").exists()
