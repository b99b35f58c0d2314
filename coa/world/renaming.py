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

from coa.world.encyclopedia import CITY_SUFFIXES, COUNTRY_SUFFIXES, World
from coa.world.names import NameMaker

CAPITALISED_WORD = re.compile(r"[A-Z][a-z]+")


class Renamer:
    """Maps every entity name in a text to a fresh one of the same shape (a person's two words, or a stem and the
    original suffix for places, companies and books), the same within one call and never a name of the world.

    Args:
        world: the entities whose names are replaced; the fresh names avoid all of them.
        rng: draws the fresh names.
    """

    def __init__(self, world: World, rng: random.Random) -> None:
        self.types = {e.name: e.type for e in world.entities.values()}
        self.maker = NameMaker(rng)
        self.maker.used.update(name.lower() for name in self.types)
        self.maker.used.update(word.lower() for name in self.types for word in name.split())

    def rename(self, texts: list[str]) -> list[str]:
        """The texts with each entity name replaced; one mapping for all of them."""
        mapping: dict[str, str] = {}
        return [self._rename_one(text, mapping) for text in texts]

    def _rename_one(self, text: str, mapping: dict[str, str]) -> str:
        pieces, last = [], 0
        for start, end, name in self._names_in(text):
            if name not in mapping:
                mapping[name] = self._fresh(name)
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


PLACE_SUFFIXES = sorted(CITY_SUFFIXES + COUNTRY_SUFFIXES, key=len, reverse=True)  # "mouth" before "ton"


def _place_suffix(name: str) -> str:
    """The suffix that marks a city or country name ("" when it has none of the world's)."""
    return next((s for s in PLACE_SUFFIXES if name.endswith(s) and len(name) > len(s)), "")
