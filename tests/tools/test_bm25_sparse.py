"""The sparse BM25 backend: rank-bm25's BM25Okapi scores by hand, its exact order, and agreement on real corpora."""

import importlib.util
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from coa.tools.bm25 import BM25Search, Passage, read_corpus, write_corpus
from coa.tools.bm25_sparse import SparseBM25
from coa.world.build import build_world
from coa.world.config import WorldConfig

REPO = Path(__file__).resolve().parents[2]

# N=4 documents, lengths 2, 3, 2, 1, avgdl = 2.
DOCS = [["cat", "dog"], ["cat", "cat", "fish"], ["cat", "bird"], ["emu"]]
L = math.log(7 / 3)  # idf of a term in 1 document: log(4 - 1 + 0.5) - log(1 + 0.5)
# "cat" is in 3 documents: log(1.5) - log(3.5) = -L < 0, floored to 0.25 * mean idf = 0.25 * (4L - L) / 5
IDF_CAT = 0.25 * 3 * L / 5


def test_scores_match_hand_computed_bm25okapi():
    index = SparseBM25(DOCS)
    # tf / (tf + k1 * (1 - b + b * dl / avgdl)) * (k1 + 1) with k1=1.5, b=0.75:
    # d0: 1 * 2.5 / (1 + 1.5) = 1;  d1: 2 * 2.5 / (2 + 1.5 * 1.375) = 16/13;  d2: 1;  d3: no "cat"
    expected_cat = [IDF_CAT, IDF_CAT * 16 / 13, IDF_CAT, 0.0]
    assert np.allclose(index.scores([["cat"]]).toarray()[0], expected_cat)
    # "emu" in d3 (length 1): 2.5 / (1 + 1.5 * 0.625) = 2.5 / 1.9375
    assert np.isclose(index.scores([["emu"]]).toarray()[0, 3], L * 2.5 / 1.9375)
    reference = BM25Okapi(DOCS)
    for query in (["cat"], ["cat", "emu"], ["cat", "cat", "dog"], ["bird", "zebra"]):
        assert np.allclose(index.scores([query]).toarray()[0], reference.get_scores(query), rtol=1e-12)


@pytest.mark.parametrize("common_df", [None, 0, 1, 2, 100])
def test_topk_is_rank_bm25s_stable_order_whatever_the_pruning(common_df):
    index = SparseBM25(DOCS, common_df=common_df)
    reference = BM25Okapi(DOCS)
    queries = [["cat"], ["cat", "emu"], ["zebra"], ["emu"], ["dog", "cat", "cat"], ["fish", "bird", "emu", "dog"]]
    for query, (ids, scores) in zip(queries, index.topk(queries, 3)):
        want = np.argsort(-reference.get_scores(query), kind="stable")[:3]
        assert ids.tolist() == want.tolist(), query
        assert np.allclose(scores, reference.get_scores(query)[want])
    # by hand: d1 beats d0 and d2, which tie and keep corpus order; no positive score -> corpus order
    assert index.topk([["cat"]], 3)[0][0].tolist() == [1, 0, 2]
    assert index.topk([["zebra"]], 2)[0][0].tolist() == [0, 1]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The embedded world at its default size (2,630 passages), with a few questions."""
    out = tmp_path_factory.mktemp("bm25_world")
    build_world(out, WorldConfig(seed=0, train=50, dev=10, test=30))
    return out


def test_backends_agree_on_the_world_corpus(world):
    corpus = str(world / "corpus.jsonl")
    ref, fast = BM25Search(corpus, backend="rank_bm25"), BM25Search(corpus, backend="sparse")
    rng = random.Random(0)
    names = [p.contents.split(" is a ")[0] for p in rng.sample(ref.passages, 200)]
    questions = [json.loads(line)["question"] for split in ("dev", "test") for line in open(world / "qa" / f"{split}.jsonl")]
    queries = names[:150] + [f"{n} birth year" for n in names[150:]] + questions + ["is a", "zzz", "", "year year a"]
    want, got = [ref.search(q) for q in queries], fast.search_batch(queries)
    top1 = sum([p.id for p in a[:1]] == [p.id for p in b[:1]] for a, b in zip(want, got)) / len(queries)
    assert top1 >= 0.99
    assert all([p.id for p in a] == [p.id for p in b] for a, b in zip(want, got))  # in fact the whole top 3
    assert all(math.isclose(p.score, q.score, rel_tol=1e-9) for a, b in zip(want, got) for p, q in zip(a, b))
    assert fast.call(queries[:20]) == ref.call(queries[:20])
    assert [fast.search(q) for q in queries[:20]] == got[:20]  # one at a time = in a batch
    assert fast.search("") == [] and fast.call([""]) == ["No results."]


def test_unknown_backend_and_corpus_writer_errors(tmp_path):
    path = tmp_path / "corpus.jsonl"
    assert write_corpus(path, [Passage("a", "x y"), Passage("b", "y z")]) == 2
    assert read_corpus(path) == [Passage("a", "x y"), Passage("b", "y z")]
    with pytest.raises(ValueError, match="backend='bm25s' is unknown"):
        BM25Search(str(path), backend="bm25s")
    with pytest.raises(ValueError, match=r"passage 1: field 'id' 'a' repeats"):
        write_corpus(tmp_path / "dup.jsonl", [Passage("a", "x"), Passage("a", "y")])
    with pytest.raises(ValueError, match=r"passage 0 \(id 'a'\): field 'contents' is empty"):
        write_corpus(tmp_path / "empty.jsonl", [Passage("a", " ")])
    assert not (tmp_path / "dup.jsonl").exists()  # a failed write leaves no file


@pytest.mark.slow
def test_backends_agree_on_a_100k_passage_world():
    spec = importlib.util.spec_from_file_location("bench_retrieval", REPO / "bench" / "retrieval.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    passages = bench.scaled_world_passages(100_000)
    queries = bench.oracle_queries(passages, 300)
    texts = [p.contents for p in passages]
    from coa.tools.bm25 import bm25_tokenize

    tokens = [bm25_tokenize(t) for t in texts]
    ref, fast = BM25Okapi(tokens), SparseBM25(tokens)
    got = fast.topk([bm25_tokenize(q) for q in queries], 3)
    want = [np.argsort(-ref.get_scores(bm25_tokenize(q)), kind="stable")[:3] for q in queries]
    assert len(passages) == 100_000
    assert sum(g[0][0] == w[0] for g, w in zip(got, want)) / len(queries) >= 0.99
