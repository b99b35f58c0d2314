"""Fresh names in training trajectories: the model then learns to copy the names it reads, not to recall facts.

A tiny model trained on one world's trajectories learns each entity's facts by heart and answers from memory; on
an entity it never saw it then writes a remembered name instead of the one in the question (SFT2: needs-search EM
0.72 on seen entities, 0.43 on unseen ones). Giving the entities of a share of the training trajectories names
drawn afresh (consistently across the question, queries, observations, notes and answer) leaves copying as the
only way to fit those examples.
"""

from __future__ import annotations

import random
import re

from coa.world.config import RENAME_POOLS
from coa.world.encyclopedia import CITY_SUFFIXES, COUNTRY_SUFFIXES, World
from coa.world.names import NameMaker

CAPITALISED_WORD = re.compile(r"[A-Z][a-z]+")


class Renamer:
    """Maps every entity name in a text to another of the same type, the same within one call.

    Args:
        world: the entities whose names are replaced.
        rng: draws the new names.
        pool: "fresh": names of the same shape never in the world (a person's two words, or a stem and the original
            suffix for places, companies and books); their syllables are new to a tokenizer trained on the corpus.
            "world": names made of the world's own words: a world first name and surname paired anew, a world
            company or book stem with the original suffix (never an existing entity's name), or another city or
            country of the world. A tokenizer trained on the corpus holds every such word, so copying one is as hard
            as copying a held-out entity's name.
    """

    def __init__(self, world: World, rng: random.Random, pool: str = "fresh") -> None:
        if pool not in RENAME_POOLS:
            raise ValueError(f"rename pool {pool!r}: expected one of {RENAME_POOLS}")
        self.types = {e.name: e.type for e in world.entities.values()}
        self.pool, self.rng = pool, rng
        self.maker = NameMaker(rng)
        self.maker.used.update(name.lower() for name in self.types)
        self.maker.used.update(word.lower() for name in self.types for word in name.split())
        self.words = _world_words(world)

    def rename(self, texts: list[str]) -> list[str]:
        """The texts with each entity name replaced; one mapping for all of them."""
        mapping: dict[str, str] = {}
        return [self._rename_one(text, mapping) for text in texts]

    def _rename_one(self, text: str, mapping: dict[str, str]) -> str:
        pieces, last = [], 0
        for start, end, name in self._names_in(text):
            if name not in mapping:
                taken = set(mapping.values())
                mapping[name] = self._fresh(name) if self.pool == "fresh" else self._from_world(name, taken)
            pieces += [text[last:start], mapping[name]]
            last = end
        return "".join(pieces + [text[last:]])

    def _names_in(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, name) of each entity name, two-word names preferred over their first word."""
        words = list(CAPITALISED_WORD.finditer(text))
        found, i = [], 0
        while i < len(words):
            word = words[i]
            if i + 1 < len(words) and words[i + 1].start() == word.end() + 1 and text[word.end()] == " ":
                pair = text[word.start(): words[i + 1].end()]
                if pair in self.types:
                    found.append((word.start(), words[i + 1].end(), pair))
                    i += 2
                    continue
            if word.group() in self.types:
                found.append((word.start(), word.end(), word.group()))
            i += 1
        return found

    def _fresh(self, name: str) -> str:
        maker = self.maker
        if self.types[name] == "person":
            return maker.unique(lambda: f"{maker.word(1, 2)} {maker.word(2, 2)}")
        if " " in name:  # companies and books: "Stem Suffix"
            suffix = name.rsplit(" ", 1)[1]
            return maker.unique(lambda: f"{maker.word(1, 2)} {suffix}")
        stem_suffix = _place_suffix(name)
        return maker.unique(lambda: f"{maker.word(1, 2)}{stem_suffix}")

    def _from_world(self, name: str, taken: set[str]) -> str:
        etype, words = self.types[name], self.words
        if etype == "person":
            draw = lambda: f"{self.rng.choice(words['first'])} {self.rng.choice(words['surname'])}"
        elif " " in name:
            suffix = name.rsplit(" ", 1)[1]
            draw = lambda: f"{self.rng.choice(words[etype])} {suffix}"
        else:
            draw = lambda: self.rng.choice(words[etype])
        return _draw_new(draw, avoid=taken | {name} | (set() if etype in ("city", "country") else set(self.types)))


def _world_words(world: World) -> dict[str, list[str]]:
    """The words world names are made of: persons' first names and surnames, company and book stems, and the
    single-word city and country names (sorted, so draws are reproducible)."""
    names = {t: sorted(world.get(i).name for i in ids) for t, ids in world.by_type.items()}
    return {
        "first": sorted({n.split()[0] for n in names["person"]}),
        "surname": sorted({n.split()[1] for n in names["person"]}),
        "company": sorted({n.rsplit(" ", 1)[0] for n in names["company"]}),
        "book": sorted({n.rsplit(" ", 1)[0] for n in names["book"]}),
        "city": names["city"],
        "country": names["country"],
    }


def _draw_new(draw, avoid: set[str], tries: int = 1000) -> str:
    for _ in range(tries):
        name = draw()
        if name not in avoid:
            return name
    raise RuntimeError("rename pool exhausted: the world has too few names of this type")


PLACE_SUFFIXES = sorted(CITY_SUFFIXES + COUNTRY_SUFFIXES, key=len, reverse=True)  # "mouth" before "ton"


def _place_suffix(name: str) -> str:
    """The suffix that marks a city or country name ("" when it has none of the world's)."""
    return next((s for s in PLACE_SUFFIXES if name.endswith(s) and len(name) > len(s)), "")
