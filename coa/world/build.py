"""`coa world build`: draws a world and writes its corpus, QA sets and SFT data in the public formats."""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from coa.data.atomic import atomic_open, write_jsonl
from coa.data.cota_pairs import write_cota_pairs
from coa.prompts import PromptTemplate
from coa.rewards.autocoa import ANSWER_SEPARATOR
from coa.tools.bm25 import BM25Search
from coa.world.config import DEFAULT_MIX, WORLD_NAMES_SFT, WorldConfig
from coa.world.encyclopedia import World, generate_world
from coa.world.oracle import Oracle
from coa.world.pairs import PairWriter
from coa.world.questions import Question, draw_question
from coa.world.renaming import Renamer

SPLIT_SEEDS = {"train": 1, "dev": 2, "test": 3, "rl": 4}
PAIR_SEED_OFFSET = 10  # pairs draw from their own rng, so adding them left every other file unchanged
RL_SUBJECT_SEED_OFFSET = 20
RENAME_SEED_OFFSET = 30


def kind_counts(total: int, mix: dict[str, float]) -> dict[str, int]:
    """Splits `total` over kinds in proportion to `mix`; rounding leftovers go to the largest shares."""
    weight = sum(mix.values())
    counts = {k: int(total * v / weight) for k, v in mix.items()}
    for k in sorted(mix, key=lambda k: -mix[k])[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def split_subjects(world: World, unseen_fraction: float, rng: random.Random) -> tuple[list[str], list[str]]:
    """Entity ids that training questions may be about, and the held-out ones they never are."""
    seen, unseen = [], []
    for ids in world.by_type.values():
        shuffled = rng.sample(ids, len(ids))
        cut = int(len(ids) * unseen_fraction)
        unseen += shuffled[:cut]
        seen += shuffled[cut:]
    return sorted(seen), sorted(unseen)


def carve_subjects(world: World, subjects: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Splits `subjects` into (kept, carved), `fraction` of each type carved, from an rng of its own: with
    fraction 0 nothing else in the world changes."""
    if fraction == 0.0:
        return subjects, []
    rng = random.Random(seed)
    pool = set(subjects)
    kept, carved = [], []
    for ids in world.by_type.values():
        mine = sorted(i for i in ids if i in pool)
        shuffled = rng.sample(mine, len(mine))
        cut = int(len(mine) * fraction)
        carved += shuffled[:cut]
        kept += shuffled[cut:]
    return sorted(kept), sorted(carved)


def draw_split(world, oracle, counts, subjects, taken, rng, desc) -> list[tuple[Question, str]]:
    """Questions with their oracle trajectories; never a question text already in `taken`."""
    out: list[tuple[Question, str]] = []
    with tqdm(total=sum(counts.values()), desc=desc, unit="q", leave=False) as bar:
        for kind, n in counts.items():
            made, tries = 0, 0
            while made < n:
                tries += 1
                if tries > 50 * n + 1000:
                    raise RuntimeError(f"world build: could not draw {n} '{kind}' questions for {desc}; grow the world")
                question = draw_question(world, kind, subjects, rng)
                if question is None or question.question in taken:
                    continue
                trajectory = oracle.trajectory(question)
                if trajectory is None:
                    continue
                taken.add(question.question)
                out.append((question, trajectory))
                made += 1
                bar.update()
    rng.shuffle(out)
    return out


def qa_row(index: int, split: str, question: Question, unseen: bool) -> dict:
    return {
        "id": f"{split}-{index}",
        "question": question.question,
        "golden_answers": [question.answer],
        "kind": question.kind,
        "hops": question.num_searches,
        "unseen_entity": unseen,
    }


def verl_table(rows: list[dict], split: str, prompt: PromptTemplate) -> pa.Table:
    """The verl RL layout AutoCoA's parquet files use; the ground truth is one string, golds joined by "<ans_split>"."""
    return pa.Table.from_pylist([
        {
            "data_source": "coa_world",
            "prompt": prompt.messages(r["question"]),
            "ability": "fact-reasoning",
            "reward_model": {"ground_truth": ANSWER_SEPARATOR.join(r["golden_answers"]), "style": "rule"},
            "extra_info": {"index": i, "split": split},
            "id": r["id"], "kind": r["kind"], "hops": r["hops"], "unseen_entity": r["unseen_entity"],
        }
        for i, r in enumerate(rows)
    ])


def sft_row(row_id: str, question: Question, messages: list[dict]) -> dict:
    return {"id": row_id, "type": "cot" if question.kind == "no_search" else "coa", "messages": messages}


def sft_rows(rows: list[dict], pairs: list, prompt: PromptTemplate, world: World, config: WorldConfig, split: str,
             rename: bool = True):
    """A split's SFT rows; in the training split (and `rename`), `config.rename_share` of them with fresh entity
    names throughout."""
    share = config.rename_share if split == "train" and rename else 0.0
    rng = random.Random(config.seed * 1000 + RENAME_SEED_OFFSET)
    renamer = Renamer(world, rng, config.rename_pool) if share > 0 else None
    for r, (q, t, _) in zip(rows, pairs):
        messages = prompt.messages(q.question) + [{"role": "assistant", "content": t}]
        if renamer is not None and rng.random() < share:
            renamed = renamer.rename([m["content"] for m in messages])
            messages = [{**m, "content": text} for m, text in zip(messages, renamed)]
        yield sft_row(r["id"], q, messages)


def build_world(out_dir: str | Path, config: WorldConfig = WorldConfig()) -> dict[str, int]:
    """Writes corpus.jsonl, qa/{split}.jsonl|.parquet, sft/{split}.jsonl and pairs/{split}.json under `out_dir`,
    and qa/rl.jsonl|.parquet when `config.rl` > 0. With `config.rename_share` > 0 also sft/train_world_names.jsonl:
    the same training trajectories, none renamed (for SFT3: observations about renamed entities are facts of no
    world, which a world model can only learn as noise).

    Returns the number of passages, questions per split and pairs per split (`pairs_{split}`).
    """
    out = Path(out_dir)
    rng = random.Random(config.seed)
    world = generate_world(config, rng)
    corpus = [{"id": e.id, "contents": e.passage(world)} for e in world.entities.values()]
    write_jsonl(out / "corpus.jsonl", corpus)
    oracle = Oracle(BM25Search(str(out / "corpus.jsonl"), topk=config.topk))
    seen, unseen = split_subjects(world, config.unseen_fraction, rng)
    seen, rl_subjects = carve_subjects(world, seen, config.rl_fraction, config.seed * 1000 + RL_SUBJECT_SEED_OFFSET)
    prompt = PromptTemplate(config.prompt)
    uniform = {k: 1.0 for k in DEFAULT_MIX}
    pair_writer = PairWriter(world, config.pair_guess_answer_share)
    taken: set[str] = set()
    counts = {"corpus": len(corpus)}
    for split in ("train", "dev", "test"):
        split_rng = random.Random(config.seed * 1000 + SPLIT_SEEDS[split])
        n = getattr(config, split)
        if split == "train":
            pairs = [(q, t, False) for q, t in draw_split(world, oracle, kind_counts(n, config.mix), seen, taken, split_rng, split)]
        else:  # held-out splits: every kind equally, half about entities no training question asks about
            half = kind_counts(n // 2, uniform)
            pairs = [(q, t, False) for q, t in draw_split(world, oracle, half, seen, taken, split_rng, split)]
            pairs += [(q, t, q.kind != "no_search") for q, t in
                      draw_split(world, oracle, kind_counts(n - n // 2, uniform), unseen, taken, split_rng, split)]
        rows = [qa_row(i, split, q, u) for i, (q, _, u) in enumerate(pairs)]
        write_jsonl(out / "qa" / f"{split}.jsonl", rows)
        with atomic_open(out / "qa" / f"{split}.parquet", "wb") as f:
            pq.write_table(verl_table(rows, split, prompt), f)
        write_jsonl(out / "sft" / f"{split}.jsonl", sft_rows(rows, pairs, prompt, world, config, split))
        if split == "train" and config.rename_share > 0:  # SFT3's world model learns the world's facts, not fiction
            write_jsonl(out / WORLD_NAMES_SFT, sft_rows(rows, pairs, prompt, world, config, split, rename=False))
        counts[split] = len(rows)
        if config.pairs_per_question > 0:
            pair_rng = random.Random(config.seed * 1000 + PAIR_SEED_OFFSET + SPLIT_SEEDS[split])
            contrastive = [
                pair for r, (q, t, _) in zip(rows, pairs) for pair in pair_writer.pairs(
                    r["id"], prompt.user_message(q.question), q, t, config.pairs_per_question, pair_rng
                )
            ]
            write_cota_pairs(out / "pairs" / f"{split}.json", contrastive)
            counts[f"pairs_{split}"] = len(contrastive)
    if config.rl > 0:
        counts["rl"] = write_rl_split(out, world, oracle, config, rl_subjects, taken, prompt)
    write_jsonl(out / "world_config.jsonl", [asdict(config)])
    return counts


def write_rl_split(out: Path, world: World, oracle: Oracle, config: WorldConfig, subjects: list[str],
                   taken: set[str], prompt: PromptTemplate) -> int:
    """qa/rl.jsonl|.parquet: RL prompts (question + golds only) about subjects no other split asks about."""
    rng = random.Random(config.seed * 1000 + SPLIT_SEEDS["rl"])
    drawn = draw_split(world, oracle, kind_counts(config.rl, config.mix), subjects, taken, rng, "rl")
    rows = [qa_row(i, "rl", q, q.kind != "no_search") for i, (q, _) in enumerate(drawn)]
    write_jsonl(out / "qa" / "rl.jsonl", rows)
    with atomic_open(out / "qa" / "rl.parquet", "wb") as f:
        pq.write_table(verl_table(rows, "rl", prompt), f)
    return len(rows)
