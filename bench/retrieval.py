"""BM25 backends side by side: index build time, queries/s and top-1 agreement at 10k and 100k passages.

    python bench/retrieval.py                      # 10k and 100k passages, ~2 min on 2 cores
    python bench/retrieval.py --sizes 2000 --ref-queries 50   # a quick look

The corpus is the embedded world's encyclopedia with every entity count scaled up (same
generator, same passage shape); queries are what the oracle searches for: an entity's name,
sometimes followed by the relation it wants. "rank_bm25" answers one query at a time (it has no
batch call); "sparse" is timed both one query per call and in batches. The machine's load average
is printed beside every number: on shared cores compare the ratios, not the absolute rates.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from coa.tools.bm25 import BM25Search, Passage, write_corpus
from coa.world.config import WorldConfig
from coa.world.encyclopedia import SCHEMA, generate_world

ENTITY_FIELDS = ("persons", "cities", "countries", "companies", "books")


def scaled_world_passages(num_passages: int, seed: int = 0) -> list[Passage]:
    """The embedded world's corpus with each entity count scaled so that there are `num_passages`."""
    base = WorldConfig(seed=seed)
    base_total = sum(getattr(base, f) for f in ENTITY_FIELDS)
    counts = {f: max(2, getattr(base, f) * num_passages // base_total) for f in ENTITY_FIELDS}
    counts["persons"] += num_passages - sum(counts.values())  # the rounding remainder
    world = generate_world(replace(base, **counts), random.Random(seed))
    return [Passage(e.id, e.passage(world)) for e in world.entities.values()]


def oracle_queries(passages: list[Passage], n: int, seed: int = 0) -> list[str]:
    """`n` search queries as the oracle writes them: a name, half the time followed by a relation."""
    rng = random.Random(seed)
    out = []
    for p in rng.sample(passages, min(n, len(passages))):
        name, etype = p.contents.split(" is a ", 1)[0], p.id.split("-")[0]
        out.append(f"{name} {rng.choice(list(SCHEMA[etype]))}" if rng.random() < 0.5 else name)
    return out


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_size(num_passages: int, ref_queries: int, fast_queries: int, batch_size: int, seed: int) -> dict:
    passages = scaled_world_passages(num_passages, seed)
    queries = oracle_queries(passages, max(ref_queries, fast_queries), seed)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        write_corpus(corpus, passages)
        ref, ref_build_s = timed(lambda: BM25Search(str(corpus), backend="rank_bm25"))
        fast, fast_build_s = timed(lambda: BM25Search(str(corpus), backend="sparse"))
    load_build = load()
    ref_hits, ref_s = timed(lambda: [ref.search(q) for q in queries[:ref_queries]])
    load_ref = load()
    fast_single, single_s = timed(lambda: [fast.search(q) for q in queries[:fast_queries]])
    batches = [queries[i:i + batch_size] for i in range(0, fast_queries, batch_size)]
    fast_batched, batched_s = timed(lambda: [hits for b in batches for hits in fast.search_batch(b)])
    load_fast = load()
    top1 = sum(a[0].id == b[0].id for a, b in zip(ref_hits, fast_batched)) / len(ref_hits)
    top3 = sum([p.id for p in a] == [p.id for p in b] for a, b in zip(ref_hits, fast_batched)) / len(ref_hits)
    assert all([p.id for p in a] == [p.id for p in b] for a, b in zip(fast_single, fast_batched))
    ref_qps = len(ref_hits) / ref_s
    return {
        "passages": len(passages), "ref_build_s": ref_build_s, "fast_build_s": fast_build_s,
        "ref_qps": ref_qps, "single_qps": fast_queries / single_s, "batched_qps": fast_queries / batched_s,
        "top1": top1, "top3": top3, "ref_queries": len(ref_hits),
        "load_build": load_build, "load_ref": load_ref, "load_fast": load_fast,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="corpus sizes (passages)")
    parser.add_argument("--ref-queries", type=int, default=200, help="queries timed on rank_bm25 (one at a time)")
    parser.add_argument("--fast-queries", type=int, default=2048, help="queries timed on the sparse backend")
    parser.add_argument("--batch-size", type=int, default=64, help="queries per sparse matmul in the batched run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"python bench/retrieval.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"cpus {os.cpu_count()}, load average (1/5/15 min) at start {load()}")
    rows = []
    for n in args.sizes:
        rows.append(bench_size(n, args.ref_queries, args.fast_queries, args.batch_size, args.seed))
        print(f"  {n} passages done, load {load()}", flush=True)
    print()
    print("| passages | build rank_bm25 s | build sparse s | rank_bm25 q/s | sparse q/s (1/call) | "
          f"sparse q/s (batch {args.batch_size}) | speed-up 1/call | speed-up batched | top-1 agree | top-3 same | "
          "load avg (build; rank_bm25; sparse) |")
    print("|" + "---|" * 11)
    for r in rows:
        print(f"| {r['passages']:,} | {r['ref_build_s']:.2f} | {r['fast_build_s']:.2f} | {r['ref_qps']:.1f} | "
              f"{r['single_qps']:.0f} | {r['batched_qps']:.0f} | {r['single_qps'] / r['ref_qps']:.0f}x | "
              f"{r['batched_qps'] / r['ref_qps']:.0f}x | {r['top1']:.1%} of {r['ref_queries']} | {r['top3']:.1%} | "
              f"{r['load_build']}; {r['load_ref']}; {r['load_fast']} |")


if __name__ == "__main__":
    main()
