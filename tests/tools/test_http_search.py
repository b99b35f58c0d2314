"""HTTPSearch against real servers on 127.0.0.1: the coa retriever, and a fault-injecting one.

Fault injection (a real uvicorn server, no mocks): connection refused, server gone between calls,
timeout, HTTP 500 (always, twice then fine, once in a multi-batch call), HTTP 404, malformed JSON, wrong shapes.
Each fault must come back as a `Retrieval failed: ...` observation counted in `tool/errors`.
"""

import asyncio
import copy
import json
import socket
import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from coa.serving.retriever import BackgroundServer, build_app
from coa.tools.bm25 import BM25Search, Passage
from coa.tools.http_search import HTTPSearch, RetrievalFailure, parse_retrieve_response

QUERIES = ["where was Ada Vell born", "capital of Mereth", "?!", "Calder Works founder", "river Sael"]
FAST = dict(backoff_s=0.01)  # retries in tests should not wait


@pytest.fixture(scope="module")
def bm25(tiny_corpus: Path) -> BM25Search:
    return BM25Search(str(tiny_corpus), topk=3)


@pytest.fixture(scope="module")
def retriever(bm25: BM25Search):
    with BackgroundServer(build_app(bm25)) as server:
        yield server


def fault_app(bm25: BM25Search) -> FastAPI:
    """`POST /{mode}/retrieve` misbehaves as `mode` says; `app.state.log` records (mode, number of queries)."""
    app = FastAPI()
    app.state.log = []

    @app.post("/{mode}/retrieve")
    async def retrieve(mode: str, request: Request):
        queries = (await request.json())["queries"]
        app.state.log.append((mode, len(queries)))
        tries = sum(m == mode for m, _ in app.state.log)
        if mode == "slow":
            await asyncio.sleep(3)
        if mode == "error500" or (mode == "flaky" and tries <= 2) or (mode == "once" and tries == 1):
            return Response("internal error", status_code=500)
        if mode == "badjson":
            return Response(b'{"result": [[{"document": {"id": "p0", "conte', media_type="application/json")
        if mode == "html":
            return Response("<html>Bad gateway</html>", media_type="text/html")
        if mode == "fewer":
            return JSONResponse({"result": [[] for _ in queries[1:]]})
        if mode == "nocontents":
            return JSONResponse({"result": [[{"document": {"id": "p0"}, "score": 1.0}] for _ in queries]})
        hits = [[{"document": {"id": p.id, "contents": p.contents}, "score": p.score} for p in bm25.search(q, 3)]
                for q in queries]
        return JSONResponse({"result": hits})

    return app


@pytest.fixture(scope="module")
def faulty_server(bm25: BM25Search):
    app = fault_app(bm25)
    with BackgroundServer(app) as server:
        server.log = app.state.log
        yield server


@pytest.fixture
def faulty(faulty_server):
    faulty_server.log.clear()
    return faulty_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_all_failed(observations: list[str], n: int, reason: str) -> None:
    assert len(observations) == n
    for o in observations:
        assert o.startswith("Retrieval failed: ") and reason in o, o


# --- against the real coa retriever ---------------------------------------------------------------

def test_same_observations_as_local_bm25(retriever: BackgroundServer, bm25: BM25Search):
    tool = HTTPSearch(retriever.url + "/retrieve", topk=3)
    assert tool.call(QUERIES) == bm25.call(QUERIES)
    assert tool.call([QUERIES[2]]) == ["No results."]
    assert tool.metrics() == {"tool/calls": 6, "tool/errors": 0, "tool/requests": 2, "tool/retries": 0}


def test_topk_reaches_the_server(retriever: BackgroundServer, tiny_passages):
    one = HTTPSearch(retriever.url + "/retrieve", topk=1).call(["capital of Mereth"])
    assert one == [f"(1) {tiny_passages['p2']}"]


def test_one_post_per_batch_in_order(faulty):
    tool = HTTPSearch(faulty.url + "/ok/retrieve", batch_size=2)
    observations = tool.call(QUERIES)
    assert faulty.log == [("ok", 2), ("ok", 2), ("ok", 1)]  # 5 queries, batches of 2
    assert observations == HTTPSearch(faulty.url + "/ok/retrieve", batch_size=64).call(QUERIES)
    assert tool.metrics()["tool/requests"] == 3


# --- faults -----------------------------------------------------------------------------------------

def test_server_down_connection_refused():
    tool = HTTPSearch(f"http://127.0.0.1:{free_port()}/retrieve", retries=2, **FAST)
    observations = tool.call(["a", "b"])
    assert_all_failed(observations, 2, "ConnectError")
    assert "(3 attempts)" in observations[0]
    assert tool.metrics() == {"tool/calls": 2, "tool/errors": 2, "tool/requests": 3, "tool/retries": 2}


def test_server_gone_between_calls(bm25: BM25Search):
    server = BackgroundServer(build_app(bm25))
    tool = HTTPSearch(server.url + "/retrieve", retries=1, **FAST)
    with server:
        assert tool.call(["capital of Mereth"])[0].startswith("(1) Mereth")
    assert_all_failed(tool.call(["capital of Mereth"]), 1, "cannot reach")  # the pooled connection is dead too
    assert tool.metrics()["tool/errors"] == 1


def test_timeout(faulty):
    tool = HTTPSearch(faulty.url + "/slow/retrieve", timeout_s=0.2, retries=0)
    start = time.monotonic()
    assert tool.call(["a", "b", "c"]) == ["Retrieval failed: timeout after 0.2 s"] * 3
    assert time.monotonic() - start < 2.5  # gave up long before the server's 3 s answer
    assert tool.metrics()["tool/errors"] == 3


def test_http_500_is_retried_with_backoff(faulty):
    tool = HTTPSearch(faulty.url + "/error500/retrieve", retries=2, backoff_s=0.05)
    start = time.monotonic()
    observations = tool.call(["a"])
    assert time.monotonic() - start >= 0.05 + 0.10  # waits 0.05 s, then 0.10 s
    assert observations == [f"Retrieval failed: HTTP 500 from {faulty.url}/error500/retrieve (3 attempts)"]
    assert faulty.log == [("error500", 1)] * 3
    assert tool.metrics() == {"tool/calls": 1, "tool/errors": 1, "tool/requests": 3, "tool/retries": 2}


def test_retry_recovers_from_transient_500(faulty):
    tool = HTTPSearch(faulty.url + "/flaky/retrieve", retries=2, **FAST)
    assert tool.call(["capital of Mereth"])[0].startswith("(1) Mereth")
    assert tool.metrics() == {"tool/calls": 1, "tool/errors": 0, "tool/requests": 3, "tool/retries": 2}


def test_http_404_is_not_retried(faulty):
    tool = HTTPSearch(faulty.url + "/no/such/path", retries=3, **FAST)
    assert_all_failed(tool.call(["a"]), 1, "HTTP 404")
    assert tool.metrics()["tool/requests"] == 1


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("badjson", "malformed JSON"),
        ("html", "malformed JSON"),
        ("fewer", "1 results for 2 queries"),
        ("nocontents", "result[0][0] has no document 'contents'"),
    ],
)
def test_bad_body_is_an_observation_not_retried(faulty, mode: str, reason: str):
    tool = HTTPSearch(faulty.url + f"/{mode}/retrieve", retries=2, **FAST)
    assert_all_failed(tool.call(["a", "b"]), 2, reason)
    assert faulty.log == [(mode, 2)]
    assert tool.metrics()["tool/errors"] == 2


def test_failed_batch_does_not_spoil_the_others(faulty):
    # "once" answers its first request with a 500: batch 1 fails (no retries), batch 2 is answered
    tool = HTTPSearch(faulty.url + "/once/retrieve", retries=0, batch_size=2)
    observations = tool.call(["capital of Mereth", "river Sael", "Calder Works"])
    assert_all_failed(observations[:2], 2, "HTTP 500")
    assert observations[2].startswith("(1) Calder Works")
    assert tool.metrics() == {"tool/calls": 3, "tool/errors": 2, "tool/requests": 2, "tool/retries": 0}


# --- parsing and settings -----------------------------------------------------------------------------

def test_parse_both_hit_shapes():
    body = {"result": [[{"document": {"id": "a", "contents": "A"}, "score": 2}], [{"id": 7, "contents": "B"}], []]}
    assert parse_retrieve_response(json.dumps(body).encode(), 3) == [
        [Passage("a", "A", 2.0)], [Passage("7", "B", 0.0)], [],
    ]


@pytest.mark.parametrize(
    "body", [b"[]", b'{"result": {}}', b'{"result": [{}]}', b'{"result": [[{"contents": "A", "score": "high"}]]}']
)
def test_parse_rejects_wrong_shapes(body: bytes):
    with pytest.raises(RetrievalFailure, match="unexpected response shape"):
        parse_retrieve_response(body, 1)


@pytest.mark.parametrize("kwargs, field", [
    (dict(url="127.0.0.1:8000/retrieve"), "url"), (dict(topk=0), "topk"), (dict(batch_size=0), "batch_size"),
    (dict(retries=-1), "retries"), (dict(timeout_s=0), "timeout_s"),
])
def test_bad_settings_name_the_field(kwargs: dict, field: str):
    with pytest.raises(ValueError, match=field):
        HTTPSearch(**kwargs)


def test_copy_after_use_keeps_working(retriever: BackgroundServer):
    tool = HTTPSearch(retriever.url + "/retrieve")
    tool.call(["Orlin"])
    clone = copy.deepcopy(tool)
    assert clone.call(["Orlin"]) == tool.call(["Orlin"])
    assert clone.metrics()["tool/calls"] == 2
