"""Per-stage overrides merged into a stage YAML, list items by position."""

import pytest

from coa.pipeline.overrides import merge_overrides

STAGE = {
    "trainer": {"max_steps": 150, "callbacks": [{"class_path": "Rollout", "init_args": {"group_size": 8, "temperature": 0.6}},
                                                {"class_path": "ModelCheckpoint", "init_args": {"save_last": True}}]},
    "model": {"init_args": {"lr": 4.0e-4, "export_dir": "${...trainer.default_root_dir}/model"}},
}


def test_nested_keys_and_list_items_merge_and_the_rest_stays():
    merged = merge_overrides(STAGE, {"trainer": {"callbacks": {0: {"init_args": {"group_size": 2}}}}, "model": {"init_args": {"lr": 1e-3}}})
    assert merged["trainer"]["callbacks"][0]["init_args"] == {"group_size": 2, "temperature": 0.6}
    assert merged["trainer"]["callbacks"][1] == STAGE["trainer"]["callbacks"][1]
    assert merged["model"]["init_args"] == {"lr": 1e-3, "export_dir": "${...trainer.default_root_dir}/model"}  # interpolation kept
    assert STAGE["trainer"]["callbacks"][0]["init_args"]["group_size"] == 8  # the base is not changed


def test_positions_given_as_text_work_as_from_the_command_line():
    merged = merge_overrides(STAGE, {"trainer": {"callbacks": {"-1": {"init_args": {"every_n_train_steps": 5}}}}})
    assert merged["trainer"]["callbacks"][1]["init_args"] == {"save_last": True, "every_n_train_steps": 5}


def test_a_value_replaces_a_whole_list_and_new_keys_are_added():
    merged = merge_overrides(STAGE, {"trainer": {"callbacks": [], "limit_val_batches": 0}})
    assert merged["trainer"] == {"max_steps": 150, "callbacks": [], "limit_val_batches": 0}


def test_a_position_a_list_lacks_is_named():
    with pytest.raises(ValueError, match=r"trainer.callbacks is a list of 2; name an item by its position \(0..1\), not 'rollout'"):
        merge_overrides(STAGE, {"trainer": {"callbacks": {"rollout": {"init_args": {}}}}})
    with pytest.raises(ValueError, match="not 5"):
        merge_overrides(STAGE, {"trainer": {"callbacks": {5: {}}}})


def test_another_class_path_starts_its_init_args_afresh():
    base = {"tool": {"class_path": "BM25Search", "init_args": {"corpus_path": "${...corpus}", "topk": 1}}}
    http = {"class_path": "HTTPSearch", "init_args": {"url": "http://h:8000/retrieve"}}
    assert merge_overrides(base, {"tool": http}) == {"tool": http}  # no corpus_path left for HTTPSearch
    assert merge_overrides(base, {"tool": {"init_args": {"topk": 3}}})["tool"]["init_args"] == {"corpus_path": "${...corpus}", "topk": 3}
