"""What the stages read: the world's files unless the config names others; RL takes the world's RL split."""

import pytest

from coa.pipeline.prepare import eval_questions, eval_topk, missing_data, prepare_world, stage_data

from tiny_pipeline import tiny_settings, to_config


def test_a_world_without_an_rl_split_gives_rl_its_training_questions(small_world, tmp_path):
    config = to_config({**tiny_settings(tmp_path), "world_dir": str(small_world)})
    data = stage_data(config, small_world)
    assert data.rl_train == str(small_world / "qa" / "train.jsonl")  # the shared small world has no qa/rl.jsonl
    assert data.pairs_train == str(small_world / "pairs" / "train.json") and data.corpus == str(small_world / "corpus.jsonl")
    assert eval_questions(config, small_world) == str(small_world / "qa" / "test.jsonl")
    assert eval_topk(config, small_world) == 1  # the world's own, from its world_config.jsonl


def test_sft3_reads_a_worlds_unrenamed_trajectories_but_given_ones_as_they_are(tmp_path):
    from coa.world.build import build_world
    from coa.world.config import WorldConfig

    world = tmp_path / "world"
    build_world(world, WorldConfig(persons=40, cities=8, countries=3, companies=10, books=10, train=30, dev=4, test=4,
                                   rename_share=0.5))
    config = to_config({**tiny_settings(tmp_path), "world_dir": str(world)})
    assert stage_data(config, world).sft3_train == str(world / "sft" / "train_world_names.jsonl")
    given = to_config({**tiny_settings(tmp_path), "world_dir": str(world), "data": {"sft_train": "mine.jsonl"}})
    assert stage_data(given, world).sft3_train == "mine.jsonl"


def test_given_paths_win_over_the_world(small_world, tmp_path):
    settings = {**tiny_settings(tmp_path), "world_dir": str(small_world), "data": {"rl_train": "my/rl.parquet", "test": "t.parquet"}}
    config = to_config(settings)
    assert stage_data(config, small_world).rl_train == "my/rl.parquet"
    assert eval_questions(config, small_world) == "t.parquet"


def test_a_given_model_with_all_its_data_needs_no_world(tmp_path):
    data = {"corpus": "c.jsonl", "sft_train": "s.jsonl", "rl_train": "train.parquet", "test": "test.parquet"}
    config = to_config({**tiny_settings(tmp_path, rows=["sft2-rl2"]), "base_model": "org/model", "data": data})
    assert missing_data(config) == []
    assert prepare_world(config, tmp_path) == (None, {})
    assert missing_data(to_config({**tiny_settings(tmp_path, rows=["sft1-sft2"]), "data": data})) == ["pairs_train"]
    with_sft3 = to_config({**tiny_settings(tmp_path, rows=["sft2-sft3"]), "base_model": "org/model", "data": data})
    assert missing_data(with_sft3) == []  # SFT3 takes sft_train's trajectories when no sft3_train is given
    assert stage_data(with_sft3, None).sft3_train == "s.jsonl"


def test_a_given_world_must_hold_the_files(tmp_path):
    config = to_config({**tiny_settings(tmp_path), "world_dir": str(tmp_path / "nowhere")})
    with pytest.raises(ValueError, match="lacks .*corpus.jsonl.*coa world build --out"):
        prepare_world(config, tmp_path)


def test_a_built_world_is_reused_and_never_rebuilt_under_trained_stages(tmp_path, capsys):
    settings = tiny_settings(tmp_path)
    world, fingerprint = prepare_world(to_config(settings), tmp_path)
    assert (world / "qa" / "rl.jsonl").is_file() and fingerprint["persons"] == 40
    assert prepare_world(to_config(settings), tmp_path) == (world, fingerprint)
    assert "world: built before, reused" in capsys.readouterr().out
    changed = {**settings, "world": {**settings["world"], "train": 300}}
    with pytest.raises(ValueError, match=r"world\) was built with other settings \(changed: train\)"):
        prepare_world(to_config(changed), tmp_path)


def test_the_world_and_the_tiny_model_take_their_own_seeds_where_set(tmp_path):
    from coa.pipeline.prepare import world_config
    from coa.pipeline.pretrain import reading_seed

    settings = tiny_settings(tmp_path)
    plain = to_config({**settings, "seed": 1})
    assert world_config(plain).seed == 1 and reading_seed(plain) == 1
    mixed = to_config({**settings, "seed": 1, "world": {**settings["world"], "seed": 0}, "pretrain": {"seed": 2}})
    assert world_config(mixed).seed == 0 and reading_seed(mixed) == 2


def test_a_pypi_base_model_is_built_once_under_out(tmp_path, capsys):
    from coa.models.from_pypi import SOURCE_FILE
    from coa.pipeline.prepare import prepare_base_model

    built = tmp_path / "model" / "smollm2"
    built.mkdir(parents=True)
    (built / SOURCE_FILE).write_text("{}")  # as `coa model smollm2` leaves it: no download happens
    config = to_config({**tiny_settings(tmp_path), "base_model": "pypi:smollm2"})
    assert prepare_base_model(config, tmp_path, None, {}) == (str(built), {"base_model": "pypi:smollm2"})
    assert "nothing to do" in capsys.readouterr().out
