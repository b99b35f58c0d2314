"""Reading texts: what a tiny model pretrains on so that, like a pretrained LLM, it can read before agent training.

A real base model (the paper's DeepSeek-R1-Distill-Qwen-7B) arrives able to read: asked about a passage it has
in context, it copies the fact out. A tiny random Llama arrives able to do nothing, and on the embedded world
it learns to read only late in SFT2 (issue 10: needs-search EM 0.31 after the quick preset's 1,300 steps, 0.64
after 5,200). These texts teach reading on *another* world (another seed, so no fact of the evaluated world):
each passage followed by statements read from it ("X's birthplace Y."), pairs of passages followed by which
of the two came first ("1850 is earlier than 1952, so B comes first."), and lists of words followed by their
first and last word ("Pavo, Tru, Malken: the first word is Pavo, the last Malken."), which a pretrained model also
reads at sight and which the world's questions that need no search ask about.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

from coa.data.atomic import atomic_open
from coa.world.config import WorldConfig
from coa.world.encyclopedia import World, generate_world
from coa.world.questions import COMPARISONS

READING_SEED_OFFSET = 1_000_003  # the reading world's seed: the evaluated world's plus this, so the two differ


def reading_world_config(seed: int) -> WorldConfig:
    """The world the reading texts describe, for an evaluated world of `seed` (default sizes otherwise)."""
    return WorldConfig(seed=seed + READING_SEED_OFFSET)


def reading_texts(
    world: World, rng: random.Random, statements: int = 2, comparison_share: float = 0.3, list_share: float = 0.0
) -> Iterator[str]:
    """One text per entity, in random order: its passage and `statements` facts read from it, or (for a share of
    the entities with a year) its passage, another's of the same type, and which of the two came first; or, for
    `list_share` of them, a list of words from the world's names and its first and last word."""
    ids = list(world.entities)
    rng.shuffle(ids)
    words = sorted({w for e in world.entities.values() for w in e.name.split()})
    for entity_id in ids:
        entity = world.get(entity_id)
        if list_share and rng.random() < list_share:
            yield _word_list(words, rng)
        elif entity.type in COMPARISONS and rng.random() < comparison_share:
            yield _comparison(world, entity_id, rng)
        else:
            relations = rng.sample(list(entity.attrs), k=min(statements, len(entity.attrs)))
            read = " ".join(f"{entity.name}'s {r} {entity.value_name(r, world)}." for r in relations)
            yield f"{entity.passage(world)} {read}"


def _comparison(world: World, entity_id: str, rng: random.Random) -> str:
    entity = world.get(entity_id)
    relation = COMPARISONS[entity.type][0]
    others = [o for o in world.by_type[entity.type] if world.get(o).attrs[relation] != entity.attrs[relation]]
    other = world.get(rng.choice(others))
    pair = [entity, other] if rng.random() < 0.5 else [other, entity]
    earlier, later = sorted(pair, key=lambda e: int(e.attrs[relation]))
    stated = " ".join(f"{e.name}'s {relation} {e.attrs[relation]}." for e in pair)
    # The trajectories' own wording here ("1850 for A, 1952 for B: 1850 is earlier, so A.") did worse: the quick
    # preset's SFT1&2 (pretrained on 1 thread) comparisons EM 0.040 (seed 0), 0.060 (seed 1) on 200 comparisons.
    return (f"{pair[0].passage(world)} {pair[1].passage(world)} {stated} {earlier.attrs[relation]} is earlier than "
            f"{later.attrs[relation]}, so {earlier.name} comes first.")


def _word_list(words: list[str], rng: random.Random) -> str:
    listed = rng.sample(words, rng.randint(3, 5))
    ends = [f"the first word is {listed[0]}", f"the last word is {listed[-1]}"]
    rng.shuffle(ends)
    return f"{', '.join(listed)}: {ends[0]}, {ends[1]}."


def write_reading_corpus(
    out: Path, seed: int, passes: int = 8, comparison_share: float = 0.3, list_share: float = 0.0
) -> int:
    """Writes `passes` rounds of reading texts (other statements each round) about the reading world of `seed` as
    JSONL ({"id", "contents"}, the corpus format); returns how many."""
    config = reading_world_config(seed)
    world = generate_world(config, random.Random(config.seed))
    rng = random.Random(config.seed + 1)
    count = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out) as f:
        for round_ in range(passes):
            for text in reading_texts(world, rng, comparison_share=comparison_share, list_share=list_share):
                f.write(json.dumps({"id": f"reading-{round_}-{count}", "contents": text}) + "\n")
                count += 1
    return count
