"""Serving coa's parts over HTTP: the retrieval server (FlashRAG/Search-R1 `/retrieve` protocol)."""
