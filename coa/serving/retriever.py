"""A retrieval server speaking the FlashRAG/Search-R1 protocol, over any passage search (BM25 by default).

Protocol (as Search-R1's `retrieval_server.py`):
    POST /retrieve {"queries": [str, ...], "topk": int | null, "return_scores": bool}
    -> {"result": [[{"document": {"id", "contents"}, "score": float}, ...], ...]}   with scores
    -> {"result": [[{"id", "contents"}, ...], ...]}                                 without scores
One inner list per query, in order, best passage first. `GET /health` answers {"status": "ok"}.
"""

# No `from __future__ import annotations`: FastAPI reads the request model from the endpoint's
# annotation at runtime, and that model is local to build_app.
import socket
import threading
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # fastapi and uvicorn are imported where a server is built, so `import coa` stays light
    from fastapi import FastAPI

from coa.tools.bm25 import Passage


class PassageSearch(Protocol):
    """What the server needs from a retriever (BM25Search, either backend): a default k and batched search."""

    topk: int

    def search_batch(self, queries: list[str], topk: int | None = None) -> list[list[Passage]]: ...


def build_app(search: PassageSearch) -> "FastAPI":
    """The FastAPI app answering `/retrieve` with `search`; `topk` left out of a request means `search.topk`."""
    from fastapi import FastAPI
    from pydantic import BaseModel, Field

    class RetrieveRequest(BaseModel):
        queries: list[str]
        topk: int | None = Field(default=None, ge=1)
        return_scores: bool = False

    app = FastAPI(title="coa retriever")

    # A plain `def`: FastAPI runs it in its thread pool, so a slow search never stalls the event loop.
    # One search_batch per request: the sparse backend scores all of a request's queries in one matmul.
    @app.post("/retrieve")
    def retrieve(request: RetrieveRequest) -> dict:
        result = []
        for hits in search.search_batch(request.queries, request.topk or search.topk):
            if request.return_scores:
                result.append([{"document": {"id": p.id, "contents": p.contents}, "score": p.score} for p in hits])
            else:
                result.append([{"id": p.id, "contents": p.contents} for p in hits])
        return {"result": result}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    return app


def serve(app: "FastAPI", host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:
    """Runs `app` with uvicorn until interrupted (Ctrl-C). Loopback unless `host` says otherwise."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level)


class BackgroundServer:
    """Runs an app with uvicorn in a daemon thread on a port the OS picks: for tests and benchmarks.

    Usage: `with BackgroundServer(app) as server: httpx.post(server.url + "/retrieve", ...)`.

    Args:
        app: the ASGI app to serve.
        host: address to bind; loopback by default.
        start_timeout_s: how long to wait for uvicorn to report it is serving.
    """

    def __init__(self, app: "FastAPI", host: str = "127.0.0.1", start_timeout_s: float = 10.0) -> None:
        import uvicorn

        # Binding the socket here (port 0) gives a free port with no window for another process to take it.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._start_timeout_s = start_timeout_s

    def __enter__(self) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline and self._thread.is_alive():
            if self._server.started:
                return self
            time.sleep(0.01)
        self.__exit__(None, None, None)
        raise RuntimeError(f"BackgroundServer: uvicorn did not start on {self.url} within {self._start_timeout_s} s")

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()
