"""`coa world build --out DIR --seed N`: writes an embedded world (corpus, QA sets, SFT data, CoT+A pairs);
`coa world reading --out FILE --seed N`: the reading texts a tiny model pretrains on (`coa.world.reading`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from coa.world.build import build_world
from coa.world.config import RENAME_POOLS, WorldConfig
from coa.world.reading import write_reading_corpus


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coa world", description="Build the embedded synthetic encyclopedia.")
    sub = p.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="write corpus.jsonl, qa/*.jsonl|parquet, sft/*.jsonl, pairs/*.json")
    b.add_argument("--out", required=True, help="output directory")
    defaults = WorldConfig()
    b.add_argument("--seed", type=int, default=defaults.seed)
    for name in ("persons", "cities", "countries", "companies", "books", "train", "dev", "test", "rl", "topk"):
        b.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    b.add_argument("--unseen_fraction", type=float, default=defaults.unseen_fraction)
    b.add_argument("--rl_fraction", type=float, default=defaults.rl_fraction,
                   help="share of the other entities kept as subjects of the RL split only (--rl questions)")
    b.add_argument("--prompt", default=defaults.prompt, help="instruction written into the files: autocoa | short")
    b.add_argument("--pairs_per_question", type=int, default=defaults.pairs_per_question,
                   help="CoT+A decision points (pairs/*.json, SFT stage 1) per question; 0 writes none")
    b.add_argument("--pair_guess_answer_share", type=float, default=defaults.pair_guess_answer_share,
                   help="share of need-search pairs whose rejected side jumps to a guessed answer")
    b.add_argument("--rename_share", type=float, default=defaults.rename_share,
                   help="share of SFT training trajectories whose entities get fresh names (teaches copying what is read)")
    b.add_argument("--rename_pool", choices=RENAME_POOLS, default=defaults.rename_pool,
                   help="the new names: fresh syllables, or the world's own words recombined")
    r = sub.add_parser("reading", help="write reading texts about another world (configs/pretrain.yaml trains on them)")
    r.add_argument("--out", required=True, help="output JSONL file")
    r.add_argument("--seed", type=int, default=defaults.seed, help="the evaluated world's seed (the texts' world differs)")
    r.add_argument("--passes", type=int, default=8, help="rounds over the reading world's entities, other facts each")
    r.add_argument("--comparison_share", type=float, default=0.3, help="share of texts that compare two entities")
    r.add_argument("--list_share", type=float, default=0.0, help="share of texts that list words (first and last named)")
    return p


def main(argv: list[str]) -> None:
    args = vars(parser().parse_args(argv))
    action = args.pop("action")
    out = args.pop("out")
    if action == "reading":
        count = write_reading_corpus(Path(out), args["seed"], args["passes"], args["comparison_share"], args["list_share"])
        print(json.dumps({"out": out, "texts": count}))
        return
    counts = build_world(out, WorldConfig(**args))
    print(json.dumps({"out": out, **counts}))
