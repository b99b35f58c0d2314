"""`coa serve-retriever --corpus FILE --port P`: BM25 over a corpus JSONL behind the Search-R1 `/retrieve` API."""

from __future__ import annotations

import argparse
import sys

from coa.tools.bm25 import BACKENDS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coa serve-retriever",
        description="Serve BM25 search over a corpus JSONL ({'id', 'contents'} per line) at POST /retrieve.",
    )
    p.add_argument("--corpus", required=True, help="corpus JSONL, FlashRAG layout")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="address to bind; loopback unless you mean to expose it")
    p.add_argument("--topk", type=int, default=3, help="passages per query when a request gives no topk")
    p.add_argument("--backend", default="sparse", choices=BACKENDS,
                   help="BM25 backend: sparse (fast, the default for serving) or rank_bm25 (the reference)")
    p.add_argument("--log_level", default="warning", help="uvicorn log level: critical|error|warning|info|debug")
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    from coa.serving.retriever import build_app, serve
    from coa.tools.bm25 import BM25Search

    search = BM25Search(args.corpus, topk=args.topk, backend=args.backend)
    print(
        f"coa serve-retriever: {len(search.passages)} passages from {args.corpus} ({args.backend}); "
        f"POST http://{args.host}:{args.port}/retrieve",
        flush=True,
    )
    serve(build_app(search), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main(sys.argv[1:])
