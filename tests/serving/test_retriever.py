"""The retrieval server on 127.0.0.1: real uvicorn, real BM25 over a small corpus, real HTTP."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from coa.commands.serve_retriever import parser
from coa.serving.retriever import BackgroundServer, build_app
from coa.tools.bm25 import BM25Search

@pytest.fixture(scope="module")
def bm25(tiny_corpus: Path) -> BM25Search:
    return BM25Search(str(tiny_corpus), topk=2)


@pytest.fixture(scope="module")
def server(bm25: BM25Search):
    with BackgroundServer(build_app(bm25)) as s:
        yield s


def test_retrieve_with_scores_is_bm25_top_k(server: BackgroundServer, bm25: BM25Search):
    queries = ["where was Ada Vell born", "capital of Mereth"]
    r = httpx.post(server.url + "/retrieve", json={"queries": queries, "topk": 3, "return_scores": True})
    assert r.status_code == 200
    result = r.json()["result"]
    assert len(result) == 2
    for query, hits in zip(queries, result):
        expected = bm25.search(query, 3)
        assert [h["document"] for h in hits] == [{"id": p.id, "contents": p.contents} for p in expected]
        assert [h["score"] for h in hits] == pytest.approx([p.score for p in expected])
        assert set(hits[0]) == {"document", "score"}
    assert result[1][0]["document"]["id"] == "p2"  # the only passage naming Mereth's capital


def test_retrieve_without_scores_gives_bare_documents(server: BackgroundServer, tiny_passages):
    r = httpx.post(server.url + "/retrieve", json={"queries": ["Calder Works"], "topk": 1, "return_scores": False})
    assert r.json() == {"result": [[{"id": "p4", "contents": tiny_passages["p4"]}]]}


def test_topk_left_out_uses_server_default(server: BackgroundServer):
    r = httpx.post(server.url + "/retrieve", json={"queries": ["Orlin", "novel"]})
    assert [len(hits) for hits in r.json()["result"]] == [2, 2]  # BM25Search(topk=2)


def test_query_without_words_gives_empty_list(server: BackgroundServer):
    r = httpx.post(server.url + "/retrieve", json={"queries": ["?!", "Orlin"], "topk": 1})
    assert r.json()["result"][0] == []
    assert len(r.json()["result"][1]) == 1


@pytest.mark.parametrize("body", [{"topk": 3}, {"queries": ["x"], "topk": 0}, {"queries": "not a list"}])
def test_bad_request_is_422(server: BackgroundServer, body: dict):
    assert httpx.post(server.url + "/retrieve", json=body).status_code == 422


def test_sparse_backend_serves_the_same_passages(server: BackgroundServer, tiny_corpus: Path):
    queries = ["where was Ada Vell born", "capital of Mereth", "Calder Works", "?!"]
    body = {"queries": queries, "topk": 2, "return_scores": False}
    with BackgroundServer(build_app(BM25Search(str(tiny_corpus), topk=2, backend="sparse"))) as sparse:
        answer = httpx.post(sparse.url + "/retrieve", json=body).json()
    assert answer == httpx.post(server.url + "/retrieve", json=body).json()


def test_health(server: BackgroundServer):
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}


def test_command_binds_loopback_by_default():
    args = parser().parse_args(["--corpus", "c.jsonl"])
    assert (args.host, args.port, args.topk, args.backend) == ("127.0.0.1", 8000, 3, "sparse")


def test_command_serves_the_corpus(tiny_corpus: Path):
    # The real command in its own process: `python -m coa.commands.serve_retriever`.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "coa.commands.serve_retriever", "--corpus", str(tiny_corpus), "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/retrieve", json={"queries": ["Mereth capital"], "topk": 1})
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "serve-retriever did not answer within 60 s"
                time.sleep(0.1)
        assert r.json()["result"][0][0]["id"] == "p2"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
