"""Questions about the encyclopedia: single-hop, chains of 2-4 hops, comparisons, and no-search ones."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from coa.world.encyclopedia import SCHEMA, World

ENTITY_TYPES = tuple(SCHEMA)
COMPARISONS = {  # type -> (year relation, question verb phrase)
    "person": ("birth year", "Who was born earlier"),
    "company": ("founding year", "Which company was founded earlier"),
    "city": ("founding year", "Which city was founded earlier"),
    "book": ("publication year", "Which book was published earlier"),
}
COLOURS = ["red", "blue", "green", "amber", "violet", "white", "black", "grey", "golden", "silver"]
THINGS = ["stone", "river", "lamp", "tower", "bridge", "garden", "road", "forest", "window", "bell", "ship", "cloud"]
HOP_KINDS = {"single": 1, "chain2": 2, "chain3": 3, "chain4": 4}


@dataclass(frozen=True)
class Hop:
    """One search step: look up `entity_name`, read `relation`, find `value`."""

    entity_name: str
    relation: str
    value: str


@dataclass
class Question:
    question: str
    answer: str
    kind: str
    hops: list[Hop] = field(default_factory=list)
    subject_id: str | None = None
    reasoning: str = ""  # the closing thought before the answer (comparisons, no-search questions)

    @property
    def num_searches(self) -> int:
        return len(self.hops)


def is_entity_relation(etype: str, relation: str) -> bool:
    return SCHEMA[etype][relation] in SCHEMA


def chain_question(world: World, subject_id: str, length: int, rng: random.Random) -> Question | None:
    """Walks `length` relations from the subject; None when the walk dead-ends or revisits an entity."""
    current = world.get(subject_id)
    visited = {subject_id}
    hops: list[Hop] = []
    for step in range(length):
        last = step == length - 1
        relations = [r for r in SCHEMA[current.type] if last or is_entity_relation(current.type, r)]
        relation = rng.choice(relations)
        hops.append(Hop(current.name, relation, current.value_name(relation, world)))
        if not last:
            next_id = str(current.attrs[relation])
            if next_id in visited:
                return None
            visited.add(next_id)
            current = world.get(next_id)
    path = "'s ".join(h.relation for h in hops)
    kind = "single" if length == 1 else f"chain{length}"
    text = f"What is {world.get(subject_id).name}'s {path}?"
    return Question(text, hops[-1].value, kind, hops, subject_id)


def comparison_question(world: World, subject_id: str, other_id: str, rng: random.Random) -> Question | None:
    """Which of two entities of one type came first; None when the pair does not fit (retry)."""
    subject, other = world.get(subject_id), world.get(other_id)
    if subject.type not in COMPARISONS or other.type != subject.type or other.id == subject.id:
        return None
    relation, phrase = COMPARISONS[subject.type]
    year_a, year_b = int(subject.attrs[relation]), int(other.attrs[relation])
    if year_a == year_b:
        return None
    pair = [subject, other] if rng.random() < 0.5 else [other, subject]
    hops = [Hop(e.name, relation, str(e.attrs[relation])) for e in pair]
    earlier = min(pair, key=lambda e: int(e.attrs[relation]))
    # Each year beside its name, then the earlier year, then the name that followed it: the answer is copied
    # from right after a match (one induction step), never looked up backwards from the year to the name before it.
    # Writing the pair again ("...: the earlier is 1803 for B.") to make the copy a plain repeat did worse: the quick
    # preset's SFT1&2 comparisons EM 0.465 -> 0.255 (seed 0), 0.110 -> 0.095 (seed 1), on 200 comparisons each.
    # So did each year right before its name, for a copy keyed on the year ("1781 A, 1954 B: earlier is 1781 A."):
    # 0.170 (seed 0), 0.110 (seed 1); the wrong answers still start with a name from neither entity.
    listed = ", ".join(f"{e.attrs[relation]} for {e.name}" for e in pair)
    reasoning = f"{listed}: {earlier.attrs[relation]} is earlier, so {earlier.name}."
    text = f"{phrase}, {pair[0].name} or {pair[1].name}?"
    return Question(text, earlier.name, "comparison", hops, subject_id, reasoning)


def no_search_question(rng: random.Random) -> Question:
    """A question whose answer is in its own text: the first or last word of a list."""
    words = rng.sample(COLOURS + THINGS, rng.randint(3, 5))
    position, answer = ("first", words[0]) if rng.random() < 0.5 else ("last", words[-1])
    text = f"Which word comes {position} in the list: {', '.join(words)}?"
    return Question(text, answer, "no_search", reasoning=f"The {position} word is {answer}.")


def draw_question(world: World, kind: str, subjects: list[str], rng: random.Random) -> Question | None:
    """One question of `kind` about a subject drawn from `subjects`; None if the draw failed (retry)."""
    if kind == "no_search":
        return no_search_question(rng)
    subject_id = rng.choice(subjects)
    if kind == "comparison":
        # Both names come from `subjects`, so an entity held out of training is never named in it.
        return comparison_question(world, subject_id, rng.choice(subjects), rng)
    return chain_question(world, subject_id, HOP_KINDS[kind], rng)
