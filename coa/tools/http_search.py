"""Search through a retrieval server speaking the FlashRAG/Search-R1 `/retrieve` protocol (httpx).

Every fault (server down, timeout, HTTP error, malformed JSON, wrong shape) becomes the observation
`Retrieval failed: <reason>` and is counted in `tool/errors`; `call` never raises for a fault of the server.
"""

from __future__ import annotations

import json
import threading
import time

import httpx

from coa.tools.base import Tool
from coa.tools.bm25 import Passage, format_passages

FAILURE_PREFIX = "Retrieval failed: "


class RetrievalFailure(Exception):
    """Why one request gave no result; its text is the observation after FAILURE_PREFIX."""


def parse_retrieve_response(body: bytes, num_queries: int) -> list[list[Passage]]:
    """The passages of a `/retrieve` answer, one list per query; raises RetrievalFailure on a bad body.

    Accepts both of the protocol's hit shapes: `{"document": {"id", "contents"}, "score"}` (return_scores)
    and the bare document `{"id", "contents"}`. Hits without a score get 0.0.
    """
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RetrievalFailure(f"malformed JSON from server ({e})") from None
    result = payload.get("result") if isinstance(payload, dict) else None
    if not isinstance(result, list):
        raise RetrievalFailure("unexpected response shape: no 'result' list")
    if len(result) != num_queries:
        raise RetrievalFailure(f"unexpected response shape: {len(result)} results for {num_queries} queries")
    passages = []
    for i, hits in enumerate(result):
        if not isinstance(hits, list):
            raise RetrievalFailure(f"unexpected response shape: result[{i}] is not a list")
        row = []
        for j, hit in enumerate(hits):
            doc = hit.get("document", hit) if isinstance(hit, dict) else None
            score = hit.get("score", 0.0) if isinstance(hit, dict) else None
            if not isinstance(doc, dict) or not isinstance(doc.get("contents"), str):
                raise RetrievalFailure(f"unexpected response shape: result[{i}][{j}] has no document 'contents'")
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise RetrievalFailure(f"unexpected response shape: result[{i}][{j}] score is not a number")
            row.append(Passage(str(doc.get("id", "")), doc["contents"], float(score)))
        passages.append(row)
    return passages


class HTTPSearch(Tool):
    """Top-k passages from a remote retriever (`coa serve-retriever`, FlashRAG, Search-R1), as observations.

    Args:
        url: the server's `/retrieve` endpoint.
        topk: passages per query (AutoCoA used 3).
        timeout_s: limit on each network operation of a request (connect, send, wait for bytes).
        retries: extra tries after a connection error, timeout or HTTP 5xx; other faults are not retried.
        backoff_s: wait before the first retry; doubles before each next one.
        batch_size: queries per POST; a call with more arguments sends several requests in order.
    """

    name = "http_search"

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000/retrieve",
        topk: int = 3,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        batch_size: int = 64,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(
                f"HTTPSearch: url={url!r} must start with http:// or https://, e.g. http://127.0.0.1:8000/retrieve"
            )
        for field, value, low in (("topk", topk, 1), ("batch_size", batch_size, 1), ("retries", retries, 0)):
            if value < low:
                raise ValueError(f"HTTPSearch: {field}={value} must be >= {low}")
        if timeout_s <= 0 or backoff_s < 0:
            raise ValueError(f"HTTPSearch: timeout_s={timeout_s} must be > 0 and backoff_s={backoff_s} >= 0")
        self.url, self.topk, self.timeout_s = url, topk, timeout_s
        self.retries, self.backoff_s, self.batch_size = retries, backoff_s, batch_size
        self._client: httpx.Client | None = None  # opened on first use, so building the tool does no I/O
        self._lock = threading.Lock()
        self._counts = {"tool/calls": 0, "tool/errors": 0, "tool/requests": 0, "tool/retries": 0}

    def call(self, arguments: list[str]) -> list[str]:
        observations: list[str] = []
        for start in range(0, len(arguments), self.batch_size):
            batch = arguments[start : start + self.batch_size]
            try:
                results = self.retrieve(batch)
                observations += [format_passages(passages) or "No results." for passages in results]
            except RetrievalFailure as e:
                self._count("tool/errors", len(batch))
                observations += [FAILURE_PREFIX + str(e)] * len(batch)
            self._count("tool/calls", len(batch))
        return observations

    def retrieve(self, queries: list[str]) -> list[list[Passage]]:
        """One POST (retried on transient faults): the passages for each query; raises RetrievalFailure."""
        request = {"queries": queries, "topk": self.topk, "return_scores": True}
        failure = RetrievalFailure("no attempt made")
        for attempt in range(self.retries + 1):
            if attempt:
                self._count("tool/retries")
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            self._count("tool/requests")
            try:
                response = self._http().post(self.url, json=request)
            except httpx.TimeoutException:
                failure = RetrievalFailure(f"timeout after {self.timeout_s} s")
                continue
            except httpx.TransportError as e:  # refused, reset, DNS: the server may come back
                failure = RetrievalFailure(f"cannot reach {self.url} ({type(e).__name__}: {e})")
                continue
            except (httpx.HTTPError, httpx.InvalidURL) as e:  # e.g. a bad content encoding: not transient
                raise RetrievalFailure(f"request to {self.url} failed ({type(e).__name__}: {e})") from None
            if response.status_code >= 500:
                failure = RetrievalFailure(f"HTTP {response.status_code} from {self.url}")
                continue
            if response.status_code != 200:  # 4xx: the request itself is wrong; sending it again cannot help
                raise RetrievalFailure(f"HTTP {response.status_code} from {self.url}: {response.text[:200]}")
            return parse_retrieve_response(response.content, len(queries))
        if self.retries:
            raise RetrievalFailure(f"{failure} ({self.retries + 1} attempts)")
        raise failure

    def metrics(self) -> dict[str, int]:
        """Counts since construction: queries answered (`tool/calls`), failed (`tool/errors`), HTTP tries, retries."""
        with self._lock:
            return dict(self._counts)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout_s)
            return self._client

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def __getstate__(self) -> dict:
        # A copy (deepcopy, pickling to a worker) opens its own connection pool and lock.
        state = dict(self.__dict__, _client=None)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())
