"""CoT+A pairs from the oracle: right decision points, right continuations, seeded, other files untouched."""

import json
import re
from pathlib import Path

import pytest

from coa.data.cota_pairs import read_cota_pairs
from coa.world.build import build_world
from coa.world.config import WorldConfig

SMALL = dict(persons=40, cities=10, countries=5, companies=10, books=20, train=60, dev=12, test=12, topk=1)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def trajectories(world: Path, split: str) -> dict[str, str]:
    rows = [json.loads(line) for line in open(world / "sft" / f"{split}.jsonl")]
    return {r["id"]: r["messages"][-1]["content"] for r in rows}


def test_pairs_are_written_for_every_split_one_per_question(small_world):
    for split in ("train", "dev", "test"):
        pairs = read_cota_pairs(small_world / "pairs" / f"{split}.json")
        assert len(pairs) == len(trajectories(small_world, split))  # pairs_per_question=1


def test_chosen_continues_the_oracle_trajectory_and_rejected_goes_the_other_way(small_world):
    pairs = read_cota_pairs(small_world / "pairs" / "train.json")
    texts = trajectories(small_world, "train")
    need = [p for p in pairs if "<begin_search>" in p.chosen]
    assert 0.3 < len(need) / len(pairs) < 0.8  # both kinds of decision point are well represented
    for p in pairs:
        assert p.chosen != p.rejected
        assert texts[p.id.rsplit("-", 1)[0]].startswith("<think>" + p.prefix + p.chosen)
        if "<begin_search>" in p.chosen:  # act: the search ends at the close tag; rejected guesses without searching
            assert p.chosen.startswith(" I need ") and p.chosen.endswith("</end_search>")
            assert "<begin_search>" not in p.rejected
        else:  # answer: reason to the boxed answer; rejected is a needless search
            assert p.chosen.endswith("}") and "</think> \\boxed{" in p.chosen
            assert p.rejected.endswith("</end_search>")


def test_a_guessed_fact_has_the_right_type_and_a_wrong_value(small_world):
    corpus = (small_world / "corpus.jsonl").read_text()
    guesses = 0
    for p in read_cota_pairs(small_world / "pairs" / "train.json"):
        m = re.fullmatch(r" (.+)'s (birth year|founding year|publication year) (\S+)\.", p.rejected)
        if m:  # a year relation guessed: another year than the passage's
            entity, relation, guess = m.groups()
            truth = re.search(re.escape(f"{entity}: ") + r"[^\n]*?" + re.escape(relation) + r" (\d+)", corpus).group(1)
            assert guess.isdigit() and guess != truth
            guesses += 1
    assert guesses > 0


def test_same_seed_same_bytes_and_pairs_leave_every_other_file_unchanged(tmp_path):
    for name in ("a", "b"):
        build_world(tmp_path / name, WorldConfig(seed=5, **SMALL))
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert {"pairs/train.json", "pairs/dev.json", "pairs/test.json"} <= set(a) and a == b
    build_world(tmp_path / "none", WorldConfig(seed=5, pairs_per_question=0, **SMALL))
    build_world(tmp_path / "many", WorldConfig(seed=5, pairs_per_question=3, **SMALL))
    none, many = files(tmp_path / "none"), files(tmp_path / "many")
    assert not any(name.startswith("pairs/") for name in none)
    for name, content in none.items():
        if name != "world_config.jsonl":
            assert a[name] == content == many[name], name
    qa = [json.loads(line) for line in open(tmp_path / "many" / "qa" / "train.jsonl")]
    assert len(read_cota_pairs(tmp_path / "many" / "pairs" / "train.json")) == sum(min(3, r["hops"] + 1) for r in qa)


@pytest.mark.parametrize("share, boxed", [(1.0, True), (0.0, False)])
def test_guess_answer_share_sets_the_mix_of_rejected_kinds(tmp_path, share, boxed):
    build_world(tmp_path, WorldConfig(seed=1, pair_guess_answer_share=share, pairs_per_question=5, **SMALL))
    need = [p for p in read_cota_pairs(tmp_path / "pairs" / "train.json") if "<begin_search>" in p.chosen]
    assert need and all(p.rejected.startswith(" </think> \\boxed{") == boxed for p in need)


def test_bad_pair_settings_name_the_field():
    with pytest.raises(ValueError, match="pairs_per_question=-1"):
        WorldConfig(pairs_per_question=-1)
    with pytest.raises(ValueError, match="pair_guess_answer_share=1.5"):
        WorldConfig(pair_guess_answer_share=1.5)
