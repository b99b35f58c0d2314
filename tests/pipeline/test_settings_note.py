"""Table 1's footnote: each stage the rows use, with its steps and every key the run changed in its YAML."""

from coa.pipeline.config import load_pipeline_config
from coa.pipeline.settings_note import dotted, stage_settings_note


def test_nested_overrides_become_dotted_keys_list_positions_included():
    overrides = {"trainer": {"callbacks": {0: {"init_args": {"group_size": 4}}}, "val_check_interval": 120},
                 "data": {"init_args": {"kinds": ["comparison"], "prompt": "short"}}, "model": {}}
    assert dotted(overrides) == [
        "trainer.callbacks.0.init_args.group_size=4", "trainer.val_check_interval=120",
        'data.init_args.kinds=["comparison"]', "data.init_args.prompt=short", "model={}",
    ]


def test_the_quick_presets_note_names_its_variants_of_sft3_and_rl2():
    note = stage_settings_note(load_pipeline_config(None, []))
    assert "sft3 (configs/sft3.yaml): 100 steps, data.init_args.observation_weight=0.1" in note
    assert 'rl2 (configs/rl2.yaml): 40 steps, data.init_args.kinds=["comparison"], model.init_args.lr=0.0002' in note
    assert note.index("sft2 (") < note.index("sft1 (")  # in the order the rows first use them


def test_the_note_does_not_depend_on_the_order_of_keys_in_the_yaml():
    notes = []
    for overrides in ({"model": {"init_args": {"lr": 0.1}}, "data": {"init_args": {"seed": 1}}},
                      {"data": {"init_args": {"seed": 1}}, "model": {"init_args": {"lr": 0.1}}}):
        config = load_pipeline_config(None, ["rows=[sft2-rl2]"])
        config.stages["rl2"].overrides = overrides
        notes.append(stage_settings_note(config))
    assert notes[0] == notes[1] and notes[0].endswith("40 steps, data.init_args.seed=1, model.init_args.lr=0.1")


def test_steps_left_to_the_yaml_are_the_yamls_args_stay_out_and_only_the_rows_stages_appear():
    note = stage_settings_note(load_pipeline_config(None, ["rows=[sft2]", "stages.sft2.max_steps=null",
                                                           "stages.sft2.args=[--trainer.accelerator=cpu]"]))
    assert note.endswith("sft2 (configs/sft2.yaml): 2400 steps")  # args say how it runs, not what it trains
    assert "sft1" not in note and "rl2" not in note
    assert stage_settings_note(load_pipeline_config(None, ["rows=[base]"])) == ""
