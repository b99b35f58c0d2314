"""Completion markers and what changed between two fingerprints."""

from coa.pipeline.markers import changed_keys, is_done, read_marker, write_marker


def test_a_marker_holds_its_fingerprint_and_only_that_one_counts_as_done(tmp_path):
    assert read_marker(tmp_path) is None and not is_done(tmp_path, {"a": 1})
    write_marker(tmp_path, {"a": 1, "b": (1, 2)}, seconds=3.5)
    assert read_marker(tmp_path) == {"fingerprint": {"a": 1, "b": [1, 2]}, "seconds": 3.5}
    assert is_done(tmp_path, {"a": 1, "b": (1, 2)})  # a tuple equals the list JSON keeps
    assert not is_done(tmp_path, {"a": 2, "b": (1, 2)})


def test_changed_keys_are_dotted_paths():
    old = {"path": "sft2", "max_steps": 3, "parent": {"base_model": "m", "world": {"train": 200}}}
    new = {"path": "sft2", "max_steps": 4, "parent": {"base_model": "m", "world": {"train": 300}}, "seed": 0}
    assert changed_keys(old, new) == ["max_steps", "parent.world.train", "seed"]
