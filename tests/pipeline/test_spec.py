"""The stage tree: rows as stage paths, shared prefixes trained once, the paper's row names."""

import pytest

from coa.pipeline.spec import StageNode, parse_row, row_label, rows_served, stage_tree

PAPER_ROWS = ["sft2", "sft1-sft2", "sft1-sft2-sft3", "sft1-sft2-sft3-rl1", "sft1-sft2-rl2", "sft1-sft2-sft3-rl1-rl2"]


def test_shared_stages_appear_once_parents_first():
    keys = [n.key for n in stage_tree(PAPER_ROWS)]
    # 6 rows need 7 stage runs, not 1+2+3+4+3+5 = 18: sft1, sft1-sft2, sft1-sft2-sft3 and ...-rl1 are shared
    assert keys == ["sft2", "sft1", "sft1-sft2", "sft1-sft2-sft3", "sft1-sft2-sft3-rl1", "sft1-sft2-rl2", "sft1-sft2-sft3-rl1-rl2"]
    assert len(keys) == len(set(keys))
    seen = set()
    for node in stage_tree(PAPER_ROWS):
        assert node.parent is None or node.parent.key in seen
        seen.add(node.key)


def test_sft2_alone_and_after_sft1_are_different_runs():
    nodes = stage_tree(["sft2", "sft1-sft2"])
    assert [n.key for n in nodes] == ["sft2", "sft1", "sft1-sft2"]
    assert nodes[0].parent is None and nodes[2].parent == StageNode(("sft1",))


def test_duplicate_rows_add_no_stage():
    assert stage_tree(["sft1-sft2", "sft1-sft2"]) == stage_tree(["sft1-sft2"])


@pytest.mark.parametrize("path, label", [
    (("sft2",), "SFT2"), (("sft1", "sft2"), "SFT1&2"), (("sft1", "sft2", "sft3"), "SFT1&2&3"),
    (("sft1", "sft2", "rl2"), "SFT1&2+RL2"), (("sft1", "sft2", "sft3", "rl1", "rl2"), "SFT1&2&3+RL1&2"), ((), "base"),
])
def test_row_labels_follow_the_paper(path, label):
    assert row_label(path) == label


def test_rows_served_by_a_shared_stage():
    assert rows_served(StageNode(("sft1", "sft2")), PAPER_ROWS) == [
        "SFT1&2", "SFT1&2&3", "SFT1&2&3+RL1", "SFT1&2+RL2", "SFT1&2&3+RL1&2"
    ]
    assert rows_served(StageNode(("sft2",)), PAPER_ROWS) == ["SFT2"]


@pytest.mark.parametrize("row, message", [("sft1-sft4", "unknown stages \\['sft4'\\]"), ("sft2-sft2", "repeats a stage"), ("", "unknown")])
def test_bad_rows_are_named(row, message):
    with pytest.raises(ValueError, match=message):
        parse_row(row)
