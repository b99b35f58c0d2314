"""Load on the retrieval server: 10k `/retrieve` requests at concurrency 32 over loopback.

    python bench/server_load.py     # defaults: --requests 10000 --concurrency 32 --topk 3 --backend sparse

Builds the embedded world's corpus (default entity counts), starts `coa serve-retriever` on it in its
own process, sends one query per request (the oracle's search queries, cycled) from 32 httpx async
workers, and prints q/s, p50/p99 latency, errors (must be 0) and the machine's load average, since
client and server share the machine with whatever else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from coa.world.build import build_world
from coa.world.config import WorldConfig

# The oracle writes AutoCoA trajectories; its queries sit between these tags.
SEARCH = re.compile(r"<begin_search>(.*?)</end_search>", re.S)


def world_queries(out: Path) -> tuple[Path, list[str], int]:
    """Builds a world (all entities, few questions) and returns its corpus, search queries, passage count."""
    counts = build_world(out, WorldConfig(seed=0, train=500, dev=10, test=10))
    queries = []
    for line in open(out / "sft" / "train.jsonl", encoding="utf-8"):
        queries += [q.strip() for q in SEARCH.findall(json.loads(line)["messages"][-1]["content"])]
    return out / "corpus.jsonl", queries, counts["corpus"]


def start_server(corpus: Path, topk: int, backend: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "coa.commands.serve_retriever", "--corpus", str(corpus), "--port", str(port),
               "--topk", str(topk), "--backend", backend]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server_load: serve-retriever exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health").status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()
    sys.exit("server_load: serve-retriever did not answer within 120 s")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fire(url: str, queries: list[str], requests: int, concurrency: int, topk: int) -> tuple[list[float], int]:
    """Sends `requests` one-query requests from `concurrency` workers; returns latencies (s) and error count."""
    latencies: list[float] = []
    errors = 0
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:

        async def worker() -> None:
            nonlocal next_index, errors
            while next_index < requests:
                query = queries[next_index % len(queries)]
                next_index += 1
                start = time.perf_counter()
                try:
                    r = await client.post("/retrieve", json={"queries": [query], "topk": topk, "return_scores": True})
                    ok = r.status_code == 200 and len(r.json()["result"]) == 1
                except (httpx.HTTPError, ValueError, KeyError):
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--topk", type=int, default=3)
    p.add_argument("--backend", default="sparse", help="the server's BM25 backend: sparse | rank_bm25")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus, queries, passages = world_queries(Path(tmp))
        proc, url = start_server(corpus, args.topk, args.backend)
        try:
            asyncio.run(fire(url, queries, 200, args.concurrency, args.topk))  # warm-up, not counted
            load_before = os.getloadavg()
            server_cpu, client_cpu = cpu_s(proc.pid), time.process_time()
            start = time.perf_counter()
            latencies, errors = asyncio.run(fire(url, queries, args.requests, args.concurrency, args.topk))
            wall_s = time.perf_counter() - start
            server_cpu, client_cpu = cpu_s(proc.pid) - server_cpu, time.process_time() - client_cpu
            load_after = os.getloadavg()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    load = lambda avg: "/".join(f"{x:.2f}" for x in avg)  # noqa: E731
    print(f"\nretrieval server load: BM25 ({args.backend}) over {passages} passages, {len(set(queries))} distinct queries, "
          f"1 query per request, topk={args.topk}, {os.cpu_count()} CPUs")
    print("| requests | concurrency | wall s | q/s | p50 ms | p99 ms | errors | server CPU s | server q per CPU-s "
          "| client CPU s | load avg 1/5/15 before | after |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    print(f"| {args.requests} | {args.concurrency} | {wall_s:.1f} | {args.requests / wall_s:.0f} | "
          f"{percentile_ms(latencies, 0.50):.1f} | {percentile_ms(latencies, 0.99):.1f} | {errors} | "
          f"{server_cpu:.1f} | {args.requests / max(server_cpu, 1e-9):.0f} | {client_cpu:.1f} | {load(load_before)} | {load(load_after)} |")
    if errors:
        sys.exit(f"server_load: {errors} errors (expected 0)")


if __name__ == "__main__":
    main()
