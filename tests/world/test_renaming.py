"""Fresh names in training trajectories: consistent within an example, never a name of the world, shape kept."""

import json
import random
from pathlib import Path

import pytest

from coa.world.build import build_world
from coa.world.config import WORLD_NAMES_SFT, WorldConfig
from coa.world.encyclopedia import generate_world
from coa.world.renaming import Renamer

SMALL = dict(persons=40, cities=10, countries=5, companies=10, books=20, train=200, dev=20, test=20, topk=1)


def small_world():
    return generate_world(WorldConfig(**SMALL), random.Random(0))


def test_every_name_is_replaced_the_same_way_in_every_text_and_keeps_its_shape():
    world = small_world()
    person, company, city = (world.get(world.by_type[t][0]) for t in ("person", "company", "city"))
    texts = [f"Where does {person.name} work?",
             f"{person.name} is a person. {person.name}: employer {company.name}; birthplace {city.name}. "
             f"I need {company.name}'s founder."]
    renamed = Renamer(world, random.Random(1)).rename(texts)
    world_names = {e.name for e in world.entities.values()}
    assert not any(name in text for text in renamed for name in (person.name, company.name, city.name))
    new_person = renamed[0][len("Where does "):-len(" work?")]
    assert new_person not in world_names and len(new_person.split()) == 2
    assert renamed[1].count(new_person) == 2
    new_company = renamed[1].split("employer ")[1].split(";")[0]
    assert new_company.endswith(company.name.split()[1]) and f"I need {new_company}'s founder." in renamed[1]
    new_city = renamed[1].split("birthplace ")[1].split(".")[0]
    assert new_city not in world_names and new_city[-3:] == city.name[-3:]


def test_world_pool_recombines_the_worlds_own_words_and_never_names_an_existing_entity():
    world = small_world()
    person, company, city = (world.get(world.by_type[t][0]) for t in ("person", "company", "city"))
    text = f"{person.name} works at {company.name}, born in {city.name}; {person.name} again."
    renamer = Renamer(world, random.Random(1), pool="world")
    names = {t: [world.get(i).name for i in ids] for t, ids in world.by_type.items()}
    for _ in range(20):
        renamed = renamer.rename([text])[0]
        new_person, rest = renamed.split(" works at ")
        new_company, rest = rest.split(", born in ")
        new_city = rest.split(";")[0]
        first, surname = new_person.split()
        assert first in {n.split()[0] for n in names["person"]} and surname in {n.split()[1] for n in names["person"]}
        assert new_person not in names["person"] and renamed.count(new_person) == 2
        assert new_company not in names["company"] and new_company.endswith(" " + company.name.split()[1])
        assert new_company.rsplit(" ", 1)[0] in {n.rsplit(" ", 1)[0] for n in names["company"]}
        assert new_city in names["city"] and new_city != city.name


def test_unknown_pool_is_refused():
    with pytest.raises(ValueError, match="rename pool 'other'"):
        Renamer(small_world(), random.Random(0), pool="other")


def test_text_without_names_is_unchanged():
    text = "<think> The first word is stone. </think> \\boxed{ stone } I need it."
    assert Renamer(small_world(), random.Random(0)).rename([text]) == [text]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def test_rename_share_changes_only_the_sft_training_file_and_keeps_answers_consistent(tmp_path):
    build_world(tmp_path / "plain", WorldConfig(**SMALL))
    build_world(tmp_path / "renamed", WorldConfig(**SMALL, rename_share=0.5))
    for name in ("corpus.jsonl", "qa/train.jsonl", "qa/test.jsonl", "sft/dev.jsonl", "pairs/train.json"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "renamed" / name).read_bytes(), name
    plain, renamed = rows(tmp_path / "plain" / "sft" / "train.jsonl"), rows(tmp_path / "renamed" / "sft" / "train.jsonl")
    changed = [(p, r) for p, r in zip(plain, renamed) if p != r]
    assert 0.3 * len(plain) < len(changed) < 0.6 * len(plain)
    for p, r in changed:
        assert p["id"] == r["id"] and p["type"] == r["type"] == "coa"
        answer = r["messages"][-1]["content"].rsplit("\\boxed{ ", 1)[1][:-2]
        assert answer in r["messages"][-1]["content"].split("</think>")[0]  # read in an observation, as before


def test_a_renaming_world_keeps_its_trajectories_with_the_worlds_own_names_for_sft3(tmp_path):
    build_world(tmp_path / "plain", WorldConfig(**SMALL))
    build_world(tmp_path / "renamed", WorldConfig(**SMALL, rename_share=0.5))
    assert not (tmp_path / "plain" / WORLD_NAMES_SFT).exists()  # nothing renamed: sft/train.jsonl serves SFT3 too
    kept = (tmp_path / "renamed" / WORLD_NAMES_SFT).read_bytes()
    assert kept == (tmp_path / "plain" / "sft" / "train.jsonl").read_bytes()
