"""Reading texts: about another world than the evaluated one, every statement true of its passage, the earlier of
two named as first; the same seed writes the same file."""

import json
import random
import re

from coa.world.config import WorldConfig
from coa.world.encyclopedia import generate_world
from coa.world.reading import reading_texts, reading_world_config, write_reading_corpus


def test_the_reading_world_is_not_the_evaluated_one():
    evaluated = generate_world(WorldConfig(seed=0), random.Random(0))
    config = reading_world_config(0)
    reading = generate_world(config, random.Random(config.seed))
    assert config.seed != 0
    names = {e.name for e in evaluated.entities.values()}
    others = {e.name for e in reading.entities.values()}
    assert len(names & others) < 0.05 * len(names)  # a few syllable names may coincide; their facts do not carry over


def test_statements_read_their_passage_and_comparisons_name_the_earlier():
    config = WorldConfig(seed=5, persons=30, cities=8, countries=4, companies=8, books=10)
    world = generate_world(config, random.Random(5))
    passages = [e.passage(world) for e in world.entities.values()]
    texts = list(reading_texts(world, random.Random(1), comparison_share=0.5))
    assert len(texts) == len(world.entities)
    compared = 0
    for text in texts:
        comparison = re.search(r"(\d{4}) is earlier than (\d{4}), so (.+) comes first\.$", text)
        if comparison:
            compared += 1
            early, late, name = comparison.groups()
            assert int(early) < int(late) and re.search(rf"{re.escape(name)}'s [a-z ]+ {early}\.", text)
            continue
        passage = next(p for p in passages if text.startswith(p))
        statements = re.findall(r"'s ([a-z ]+? [^.]+)\.", text[len(passage):])
        assert len(statements) == 2 and all(fact in passage for fact in statements)
    assert compared > 0


def test_the_same_seed_writes_the_same_file(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert write_reading_corpus(a, seed=3, passes=1) == write_reading_corpus(b, seed=3, passes=1) > 1000
    assert a.read_bytes() == b.read_bytes()
    assert "contents" in json.loads(a.read_text().splitlines()[0])


def test_word_lists_name_their_first_and_last_word():
    config = WorldConfig(seed=5, persons=30, cities=8, countries=4, companies=8, books=10)
    world = generate_world(config, random.Random(5))
    texts = list(reading_texts(world, random.Random(1), list_share=0.3))
    lists = [t for t in texts if "the first word is" in t]
    assert 0.15 * len(texts) < len(lists) < 0.45 * len(texts)
    for text in lists:
        listed, said = text.split(": ", 1)
        words = listed.split(", ")
        assert 3 <= len(words) <= 5 and len(set(words)) == len(words)
        assert f"the first word is {words[0]}" in said and f"the last word is {words[-1]}" in said
