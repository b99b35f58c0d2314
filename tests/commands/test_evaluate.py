"""`coa eval` on AutoCoA's test mix (verl parquet as is): a table row per benchmark and mode, the same results
through `http_search` against a real `coa serve-retriever`, naive RAG's passages, the PNG."""

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from coa.cli import main

SOURCES = ("2WIKI", "Bamboogle", "Fanout", "HotpotQA", "MuSiQue", "NQ", "TriviaQA")


def run_eval(model_dir, parquet, out, *extra):
    main(["eval", "--model", str(model_dir), "--qa", str(parquet), "--prompt", "short", "--max_new_tokens", "8",
          "--max_actions", "2", "--out", str(out), *extra])
    rows = [json.loads(line) for line in open(out / "predictions.jsonl")]
    return rows, json.load(open(out / "metrics.json")), (out / "table.md").read_text()


def test_eval_on_autocoa_test_parquet_in_bfloat16(real_autocoa, small_model_dir, tiny_corpus, tmp_path):
    out = tmp_path / "eval"
    rows, metrics, _ = run_eval(small_model_dir, real_autocoa / "test.parquet", out, "--limit", "3",
                                "--corpus", str(tiny_corpus), "--modes", "search", "--dtype", "bfloat16")
    assert len(rows) == 3 and all(r["meta"]["source_file"].endswith("_dev.json") for r in rows)
    assert metrics["metrics"]["search/all"]["n"] == 3


def test_every_benchmark_every_mode_with_bm25(real_autocoa, small_model_dir, tiny_corpus, tmp_path):
    out = tmp_path / "eval"
    rows, metrics, table = run_eval(small_model_dir, real_autocoa / "test.parquet", out, "--per_source", "2",
                                    "--corpus", str(tiny_corpus), "--topk", "2",
                                    "--modes", "search", "closed_book", "naive_rag")
    assert len(rows) == 7 * 2 * 3
    for mode in ("search", "closed_book", "naive_rag"):
        assert metrics["metrics"][f"{mode}/all"]["n"] == 14
        for source in SOURCES:
            m = metrics["metrics"][f"{mode}/source={source}"]
            assert m["n"] == 2 and set(m) == {"n", "em", "f1", "lenient", "searches", "format_error_rate"}
            assert f"| source={source} | {mode} | 2 | " in table
    rag = [r for r in rows if r["mode"] == "naive_rag"]
    assert all(r["passages"].startswith("(1) ") and "(2) " in r["passages"] for r in rag)
    assert all(r["passages"] is None for r in rows if r["mode"] != "naive_rag")
    assert metrics["per_source"] == 2 and metrics["modes"] == ["search", "closed_book", "naive_rag"]
    assert sum(s["n"] for s in metrics["success_by_searches"].values()) == 14
    assert (out / "success_by_searches.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def serve_retriever(tiny_corpus):
    """The real `coa serve-retriever` command in its own process on 127.0.0.1; yields its /retrieve URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "coa.cli", "serve-retriever", "--corpus", str(tiny_corpus), "--port", str(port), "--topk", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/health")
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "serve-retriever did not answer within 60 s"
                time.sleep(0.1)
        yield url + "/retrieve"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_http_search_to_serve_retriever_matches_bm25(real_autocoa, small_model_dir, tiny_corpus, serve_retriever, tmp_path, teach):
    parquet = real_autocoa / "test.parquet"
    # Taught to search on the file's first question, so the search mode reaches the server too.
    question = "Are Rovin' Tumbleweeds and Forbidden Love (1938 Film) from the same country?"
    response = "<think> <begin_search> capital of Mereth </end_search> <search_result> x </search_result> </think> \\boxed{no}"
    model_dir = teach(small_model_dir, question, response, tmp_path / "taught")
    modes = ("--modes", "search", "naive_rag", "--per_source", "1", "--max_new_tokens", "40")
    local, local_metrics, local_table = run_eval(model_dir, parquet, tmp_path / "bm25", "--corpus", str(tiny_corpus),
                                                 "--topk", "2", *modes)
    tool = f"{{class_path: coa.tools.http_search.HTTPSearch, init_args: {{url: '{serve_retriever}', topk: 2}}}}"
    remote, remote_metrics, remote_table = run_eval(model_dir, parquet, tmp_path / "http", "--tool", tool, *modes)
    assert all(f"| source={s} | naive_rag | 1 | " in remote_table for s in SOURCES)
    assert all(r["passages"].startswith("(1) ") for r in remote if r["mode"] == "naive_rag")  # no "Retrieval failed"
    searched = next(r for r in remote if r["mode"] == "search" and r["question"] == question)
    assert searched["searches"] >= 1 and "Mereth is a country whose capital is Calder." in searched["output"]
    assert remote == local and remote_table == local_table
    assert remote_metrics["tool"]["class_path"] == "coa.tools.http_search.HTTPSearch"
    assert local_metrics["tool"]["init_args"] == {"corpus_path": str(tiny_corpus), "topk": 2}


def test_modes_that_call_the_tool_need_one():
    from coa.commands.evaluate import evaluate_model

    with pytest.raises(ValueError, match=r"modes \['naive_rag'\] need a corpus"):
        evaluate_model("no/model", "q.jsonl", modes=("closed_book", "naive_rag"))
    with pytest.raises(ValueError, match="unknown modes \\['rag'\\]"):
        evaluate_model("no/model", "q.jsonl", corpus_path="c.jsonl", modes=("rag",))
