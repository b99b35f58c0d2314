"""Okapi BM25 as one sparse matrix: rank-bm25's `BM25Okapi` scores, a batch of queries per matmul.

rank-bm25 scores a query by looping over every document in Python (5 queries/s at 100k passages).
Here each (term, document) weight is computed once at build time, so scoring a batch of queries is
one sparse product `Q @ W`. The weights are rank-bm25's, term for term:

    idf(t)   = log(N - df(t) + 0.5) - log(df(t) + 0.5),  and where that is < 0: epsilon * mean_t idf(t)
    W[t, d]  = idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * len(d) / avgdl))
    score(q, d) = sum over the query's tokens t (repeats counted) of W[t, d]

bm25s was not used: none of its idf variants (robertson, lucene, atire, bm25l, bm25+) floors
negative idfs at epsilon * mean idf as rank-bm25 does, and in the embedded world the words every
passage holds ("is", "a", relation names) are exactly those terms.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class SparseBM25:
    """A (vocab x docs) CSR matrix of BM25Okapi weights over pre-tokenised documents.

    Scoring is exact but pruned: a term held by more than `common_df` documents ("year", "is") has
    long postings yet a small weight. A batch is first scored on its rare terms only; the common
    terms are then added for those candidate documents alone. A document outside the candidates
    scores at most `sum_t count(t) * max_d W[t, d]` over the query's common terms, so when the k-th
    candidate beats that bound the top k is final; otherwise the query is scored in full.

    Args:
        corpus_tokens: one token list per document (tokenise with the same rule as the queries).
        k1, b, epsilon: rank-bm25's BM25Okapi parameters (same defaults).
        common_df: document frequency above which a term is "common"; None: max(64, docs // 100).
    """

    def __init__(
        self,
        corpus_tokens: list[list[str]],
        k1: float = 1.5,
        b: float = 0.75,
        epsilon: float = 0.25,
        common_df: int | None = None,
    ) -> None:
        if not corpus_tokens:
            raise ValueError("SparseBM25: the corpus is empty; give at least one document")
        self.vocab: dict[str, int] = {}
        term_ids: list[int] = []
        doc_len = np.fromiter((len(doc) for doc in corpus_tokens), dtype=np.int64, count=len(corpus_tokens))
        for doc in corpus_tokens:
            term_ids.extend(self.vocab.setdefault(tok, len(self.vocab)) for tok in doc)
        self.num_docs = len(corpus_tokens)
        doc_ids = np.repeat(np.arange(self.num_docs, dtype=np.int64), doc_len)
        # (vocab x docs), duplicates summed: tf[t, d]
        tf = sp.csr_matrix(
            (np.ones(len(term_ids), dtype=np.float64), (np.asarray(term_ids, dtype=np.int64), doc_ids)),
            shape=(len(self.vocab), self.num_docs),
        )
        tf.sum_duplicates()
        df = np.diff(tf.indptr)  # one stored entry per (term, doc) pair
        idf = np.log(self.num_docs - df + 0.5) - np.log(df + 0.5)
        self.idf = np.where(idf < 0, epsilon * idf.mean(), idf)  # rank-bm25's floor, mean over all terms
        avgdl = doc_len.sum() / self.num_docs
        norm = k1 * (1 - b + b * doc_len / avgdl)  # (docs,)
        term_of_entry = np.repeat(np.arange(len(self.vocab)), df)
        # The same operations in the same order as rank-bm25 (only the floored idfs may differ in the last bit).
        tf.data = self.idf[term_of_entry] * (tf.data * (k1 + 1) / (tf.data + norm[tf.indices]))
        self.weights = tf  # (vocab, docs)

        self.common_df = max(64, self.num_docs // 100) if common_df is None else common_df
        self.is_common = df > self.common_df  # (vocab,)
        common_ids = np.flatnonzero(self.is_common)
        common_rows = self.weights[common_ids]  # (C, docs)
        self.common_ids = common_ids
        self.common_col = np.full(len(self.vocab), -1)
        self.common_col[common_ids] = np.arange(len(common_ids))  # term id -> column in the (docs, C) table
        self.common_weights_t = common_rows.T.tocsr()  # (docs, C): a candidate's common-term weights
        self.common_max = np.maximum(common_rows.max(axis=1).toarray().ravel(), 0.0)  # (C,)

    def query_terms(self, queries: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(query row, term id) per known query token, repeats kept; unknown tokens score 0 as in rank-bm25."""
        rows, cols = [], []
        for i, tokens in enumerate(queries):
            ids = [self.vocab[t] for t in tokens if t in self.vocab]
            rows.extend([i] * len(ids))
            cols.extend(ids)
        return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)

    def query_matrix(self, queries: list[list[str]]) -> sp.csr_matrix:
        """(batch x vocab) counts of each query's known tokens."""
        rows, cols = self.query_terms(queries)
        q = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(queries), len(self.vocab)))
        q.sum_duplicates()
        return q

    def scores(self, queries: list[list[str]]) -> sp.csr_matrix:
        """(batch x docs) BM25 scores; documents sharing no token with a query are 0 (not stored)."""
        return (self.query_matrix(queries) @ self.weights).tocsr()

    def topk(self, queries: list[list[str]], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, (doc indices, scores) of the k best, best first; ties keep corpus order.

        The order is exactly `np.argsort(-scores, kind="stable")[:k]` over all documents, as
        `BM25Search` orders rank-bm25's scores, also when fewer than k documents score above 0.
        """
        k = min(k, self.num_docs)
        batch = len(queries)
        rows, cols = self.query_terms(queries)
        common = self.is_common[cols]
        q_common = np.zeros((batch, len(self.common_ids)))  # (B, C) counts of common terms
        np.add.at(q_common, (rows[common], self.common_col[cols[common]]), 1.0)
        bound = q_common @ self.common_max  # (B,) best score of a document holding no rare query term
        q_rare = sp.csr_matrix(
            (np.ones(int((~common).sum())), (rows[~common], cols[~common])), shape=(batch, len(self.vocab))
        )
        cand = (q_rare @ self.weights).tocsr()  # (B, docs): one matmul, documents holding a rare term
        cand.sum_duplicates()
        full = cand.data + self._common_part(cand, q_common)  # (M,) each candidate's whole score
        out: list[tuple[np.ndarray, np.ndarray] | None] = []
        for i in range(batch):
            lo, hi = cand.indptr[i], cand.indptr[i + 1]
            best = _best_k(cand.indices[lo:hi], full[lo:hi], k)
            out.append(best if best is not None and best[1][-1] > bound[i] else None)
        unsure = [i for i, r in enumerate(out) if r is None]
        if unsure:  # the bound did not settle them: score every document
            exact = self.scores([queries[i] for i in unsure])
            for row, i in enumerate(unsure):
                lo, hi = exact.indptr[row], exact.indptr[row + 1]
                best = _best_k(exact.indices[lo:hi], exact.data[lo:hi], k)
                if best is None:  # fewer than k positive scores: zero-score documents enter, in corpus order
                    dense = exact[row].toarray().ravel()
                    order = np.argsort(-dense, kind="stable")[:k]
                    best = (order, dense[order])
                out[i] = best
        return out  # type: ignore[return-value]

    def _common_part(self, cand: sp.csr_matrix, q_common: np.ndarray) -> np.ndarray:
        """(M,) sum over common terms of count(query, t) * W[t, doc] for each stored (query, doc) of `cand`."""
        if not len(self.common_ids) or not cand.nnz:
            return np.zeros(cand.nnz)
        w = self.common_weights_t
        query_of = np.repeat(np.arange(cand.shape[0]), np.diff(cand.indptr))  # (M,)
        starts, lengths = w.indptr[cand.indices], np.diff(w.indptr)[cand.indices]  # each candidate's row in w
        owner = np.repeat(np.arange(cand.nnz), lengths)  # (E,) candidate of each gathered entry
        pos = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(starts, lengths)
        vals = w.data[pos] * q_common[query_of[owner], w.indices[pos]]
        return np.bincount(owner, weights=vals, minlength=cand.nnz)


def _best_k(doc_ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The k best positive (doc, score), by score then doc index; None when fewer than k are positive."""
    positive = scores > 0
    if positive.sum() < k:
        return None
    doc_ids, scores = doc_ids[positive], scores[positive]
    if len(scores) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th largest score
        keep = scores >= kth  # every document tied with the k-th stays in
        doc_ids, scores = doc_ids[keep], scores[keep]
    order = np.lexsort((doc_ids, -scores))[:k]
    return doc_ids[order].astype(np.int64), scores[order]
