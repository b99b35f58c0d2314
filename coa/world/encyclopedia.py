"""A synthetic encyclopedia: fictional entities of five types, their attributes and relations."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from coa.world.config import WorldConfig
from coa.world.names import NameMaker

# type -> relation -> the type of its value (an entity type, or "year"/"word" for literals).
# The relation's name is the phrase used in passages, questions and trajectories alike.
SCHEMA: dict[str, dict[str, str]] = {
    "person": {"birthplace": "city", "employer": "company", "birth year": "year", "occupation": "word"},
    "city": {"country": "country", "founding year": "year", "river": "word"},
    "country": {"capital": "city", "currency": "word", "continent": "word"},
    "company": {"founder": "person", "headquarters": "city", "founding year": "year", "industry": "word"},
    "book": {"author": "person", "publisher": "company", "publication year": "year", "genre": "word"},
}

OCCUPATIONS = ["painter", "chemist", "sailor", "judge", "poet", "surgeon", "architect", "farmer", "pilot",
               "banker", "dancer", "astronomer", "baker", "engineer", "historian", "composer", "miner", "weaver"]
INDUSTRIES = ["shipping", "mining", "textiles", "software", "brewing", "banking", "steel", "publishing", "railways",
              "glass", "printing", "timber"]
GENRES = ["mystery", "poetry", "history", "romance", "satire", "travel", "fable", "drama", "biography"]
CONTINENTS = ["Ostra", "Velmor", "Kathun", "Serai", "Drovia"]
FIRST_NAME_COUNT = 250
CITY_SUFFIXES = ("ton", "burg", "ford", "holm", "mouth", "vale")
COUNTRY_SUFFIXES = ("ia", "land", "stan", "mark")


@dataclass
class Entity:
    id: str
    type: str
    name: str
    attrs: dict[str, str | int] = field(default_factory=dict)

    def value_name(self, relation: str, world: "World") -> str:
        """The attribute as text: an entity's name, or the literal."""
        value = self.attrs[relation]
        return world.entities[value].name if SCHEMA[self.type][relation] not in ("year", "word") else str(value)

    def passage(self, world: "World") -> str:
        facts = "; ".join(f"{rel} {self.value_name(rel, world)}" for rel in SCHEMA[self.type])
        # The name twice: BM25 then ranks an entity's own passage above those that merely mention it.
        return f"{self.name} is a {self.type}. {self.name}: {facts}."


@dataclass
class World:
    entities: dict[str, Entity]
    by_type: dict[str, list[str]]

    def get(self, entity_id: str) -> Entity:
        return self.entities[entity_id]


def _make_names(config: WorldConfig, rng: random.Random) -> dict[str, list[str]]:
    maker = NameMaker(rng)
    firsts = [maker.unique(lambda: maker.word(1, 2)) for _ in range(FIRST_NAME_COUNT)]
    return {
        "person": [maker.person(firsts) for _ in range(config.persons)],
        "city": [maker.suffixed(list(CITY_SUFFIXES)) for _ in range(config.cities)],
        "country": [maker.suffixed(list(COUNTRY_SUFFIXES)) for _ in range(config.countries)],
        "company": [maker.suffixed(["Corp", "Works", "Group", "Labs", "Trading"], " ") for _ in range(config.companies)],
        "book": [maker.suffixed(["Chronicles", "Letters", "Tales", "Atlas", "Diaries", "Songs"], " ")
                 for _ in range(config.books)],
    }


def _literal(kind: str, relation: str, rng: random.Random) -> str | int:
    if kind == "year":
        return rng.randint(1700, 1999)
    pools = {"occupation": OCCUPATIONS, "industry": INDUSTRIES, "genre": GENRES, "continent": CONTINENTS}
    if relation in pools:
        return rng.choice(pools[relation])
    return NameMaker(rng).word(1, 2).lower()  # rivers and currencies: a one-off word


def generate_world(config: WorldConfig, rng: random.Random) -> World:
    """Draws all entities, then every attribute; relations point at random entities of the right type."""
    names = _make_names(config, rng)
    entities: dict[str, Entity] = {}
    by_type: dict[str, list[str]] = {}
    for etype in SCHEMA:
        by_type[etype] = []
        for i, name in enumerate(names[etype]):
            entity = Entity(f"{etype}-{i}", etype, name)
            entities[entity.id] = entity
            by_type[etype].append(entity.id)
    for etype, relations in SCHEMA.items():
        for entity_id in by_type[etype]:
            for relation, kind in relations.items():
                if kind in by_type or kind in SCHEMA:
                    value: str | int = rng.choice(by_type[kind])
                else:
                    value = _literal(kind, relation, rng)
                entities[entity_id].attrs[relation] = value
    return World(entities, by_type)
