"""The quickstart's stages read the world's files: SFT3 the unrenamed trajectories where the world renamed some."""

from coa.commands.quickstart import sft_train_file
from coa.world.build import build_world
from coa.world.config import WorldConfig

SMALL = {"persons": 40, "cities": 8, "countries": 3, "companies": 10, "books": 10, "train": 30, "dev": 4, "test": 4}


def test_sft3_reads_the_worlds_own_names_where_the_world_renamed_some(tmp_path):
    build_world(tmp_path / "plain", WorldConfig(**SMALL))
    build_world(tmp_path / "renamed", WorldConfig(**SMALL, rename_share=0.5))
    assert sft_train_file("sft3", tmp_path / "renamed") == tmp_path / "renamed" / "sft" / "train_world_names.jsonl"
    assert sft_train_file("sft2", tmp_path / "renamed") == tmp_path / "renamed" / "sft" / "train.jsonl"
    assert sft_train_file("sft3", tmp_path / "plain") == tmp_path / "plain" / "sft" / "train.jsonl"
