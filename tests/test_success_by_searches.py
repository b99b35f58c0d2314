"""Success rate by number of searches: the numbers by hand, and the PNG."""

from coa.evaluation import Prediction
from coa.success_by_searches import plot_success_by_searches, success_by_searches


def prediction(mode, em, searches):
    return Prediction("q", mode, "Q?", ["a"], "a", em, em, searches, [], "")


def test_em_per_search_count_search_mode_only():
    ps = [prediction("search", em, k) for em, k in ((1.0, 0), (1.0, 2), (0.0, 2), (0.0, 2), (1.0, 5))]
    ps.append(prediction("closed_book", 1.0, 1))
    # 2 searches: 1 right of 3 -> 1/3
    assert success_by_searches(ps) == {0: {"n": 1, "em": 1.0}, 2: {"n": 3, "em": 1 / 3}, 5: {"n": 1, "em": 1.0}}
    assert success_by_searches(ps, "closed_book") == {1: {"n": 1, "em": 1.0}}


def test_png_written(tmp_path):
    path = plot_success_by_searches({0: {"n": 4, "em": 0.25}, 1: {"n": 10, "em": 0.6}}, tmp_path / "out" / "s.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = plot_success_by_searches({}, tmp_path / "empty.png")
    assert empty.stat().st_size > 0
