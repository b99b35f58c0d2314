"""Pronounceable, unique fictional names built from syllables, so a BPE splits them into subwords."""

from __future__ import annotations

import random

ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "tr", "st", "th", "sh"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
CODAS = ["", "", "n", "r", "l", "s", "k"]


class NameMaker:
    """Draws names that were never drawn before (all names share one pool, so no two entities clash)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, min_syllables: int = 2, max_syllables: int = 3) -> str:
        n = self.rng.randint(min_syllables, max_syllables)
        syllables = [self.rng.choice(ONSETS) + self.rng.choice(VOWELS) + self.rng.choice(CODAS) for _ in range(n)]
        return "".join(syllables).capitalize()

    def unique(self, make) -> str:
        for _ in range(1000):
            name = make()
            if name.lower() not in self.used:
                self.used.add(name.lower())
                return name
        raise RuntimeError("name pool exhausted; lower the entity counts")

    def person(self, first_names: list[str]) -> str:
        return self.unique(lambda: f"{self.rng.choice(first_names)} {self.word(2, 2)}")

    def suffixed(self, suffixes: list[str], separator: str = "") -> str:
        return self.unique(lambda: f"{self.word(1, 2)}{separator}{self.rng.choice(suffixes)}")
