"""The settings of an embedded world: its size, its question mix and how it is searched."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

WORLD_NAMES_SFT = "sft/train_world_names.jsonl"  # a world's training trajectories with no entity renamed (SFT3 reads it)


def world_model_sft(world_dir: str | Path) -> Path:
    """The trajectories SFT3 learns the world from: the unrenamed ones where the world renamed some, else
    sft/train.jsonl."""
    unrenamed = Path(world_dir) / WORLD_NAMES_SFT
    return unrenamed if unrenamed.is_file() else Path(world_dir) / "sft" / "train.jsonl"


@dataclass(frozen=True)
class WorldConfig:
    """Everything that decides a world; the same config gives byte-identical files.

    Args:
        seed: seeds every random draw.
        persons, cities, countries, companies, books: entity counts per type.
        train, dev, test: questions per split.
        rl: questions of the RL split (qa/rl.jsonl|.parquet; 0 writes none), mixed like train, about the
            `rl_fraction` of entities that no SFT training question and no held-out question is about:
            RL prompts then exercise reading names the policy never learned (AutoCoA's RL set is likewise
            its own questions).
        rl_fraction: share of the non-held-out entities kept for the RL split's subjects (0: none).
        mix: share of each question kind (normalised); kinds: single, chain2, chain3, chain4,
            comparison, no_search.
        unseen_fraction: share of entities never the subject of a training question; test questions
            about them measure reading, not memory.
        topk: passages in each search result of the oracle's trajectories (match the eval tool's).
        prompt: instruction of the written SFT/QA files ("autocoa" keeps AutoCoA's system prompt).
        pairs_per_question: CoT+A decision points (pairs/{split}.json, SFT stage 1) per question, drawn
            from its hops and its answer step; 0 writes no pairs.
        pair_guess_answer_share: where a search is needed, the share of rejected continuations that
            jump to a guessed answer; the rest state a guessed fact without searching.
        rename_share: share of the SFT training trajectories (sft/train.jsonl) whose entities get fresh names
            throughout (coa.world.renaming): the model must then copy names it reads rather than recall facts.
            The QA files, pairs and held-out splits keep the world's names; 0 leaves every file unchanged.
        rename_pool: where the new names come from (coa.world.renaming.Renamer): "fresh" (syllables the world never
            uses) or "world" (the world's own first names, surnames, stems and places, recombined).
    """

    seed: int = 0
    persons: int = 1500
    cities: int = 200
    countries: int = 30
    companies: int = 300
    books: int = 600
    train: int = 4000
    dev: int = 200
    test: int = 300
    rl: int = 0
    rl_fraction: float = 0.0
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    unseen_fraction: float = 0.15
    topk: int = 3
    prompt: str = "autocoa"
    pairs_per_question: int = 1
    pair_guess_answer_share: float = 0.5
    rename_share: float = 0.0
    rename_pool: str = "fresh"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.mix) - set(DEFAULT_MIX))
        if unknown:
            raise ValueError(f"world config: mix has unknown kinds {unknown}; known: {sorted(DEFAULT_MIX)}")
        if not 0.0 <= self.unseen_fraction < 1.0:
            raise ValueError(f"world config: unseen_fraction={self.unseen_fraction} must be in [0, 1)")
        if not 0.0 <= self.rl_fraction < 1.0:
            raise ValueError(f"world config: rl_fraction={self.rl_fraction} must be in [0, 1)")
        if self.rl > 0 and self.rl_fraction == 0.0:
            raise ValueError(f"world config: rl={self.rl} questions need rl_fraction > 0 (the RL split's own subjects)")
        if not 0.0 <= self.rename_share <= 1.0:
            raise ValueError(f"world config: rename_share={self.rename_share} must be in [0, 1]")
        if self.rename_pool not in RENAME_POOLS:
            raise ValueError(f"world config: rename_pool={self.rename_pool!r} must be one of {RENAME_POOLS}")
        if self.pairs_per_question < 0:
            raise ValueError(f"world config: pairs_per_question={self.pairs_per_question} must be >= 0 (0: no pairs)")
        if not 0.0 <= self.pair_guess_answer_share <= 1.0:
            raise ValueError(f"world config: pair_guess_answer_share={self.pair_guess_answer_share} must be in [0, 1]")
        for name in ("persons", "cities", "countries", "companies", "books"):
            if getattr(self, name) < 2:
                raise ValueError(f"world config: {name}={getattr(self, name)} must be >= 2")


RENAME_POOLS = ("fresh", "world")  # coa.world.renaming.Renamer's sources of new names

DEFAULT_MIX = {
    "single": 0.30, "chain2": 0.20, "chain3": 0.15, "chain4": 0.10, "comparison": 0.15, "no_search": 0.10,
}
