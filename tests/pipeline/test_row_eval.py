"""Which instruction each row is evaluated with."""

from tiny_pipeline import tiny_settings, to_config

from coa.pipeline.config import load_pipeline_config
from coa.pipeline.row_eval import row_prompt
from coa.pipeline.spec import StageNode, parse_row


def test_the_untrained_model_reads_the_instruction_the_stages_train_with(tmp_path):
    config = load_pipeline_config(None, [])  # the quick preset: its SFT stages train with the short prompt
    assert row_prompt(config, StageNode(parse_row("base"))) == "short"
    assert row_prompt(config, StageNode(parse_row("sft1-sft2"))) is None  # a trained row: its model's own card


def test_a_prompt_set_for_evaluation_wins_for_every_row(tmp_path):
    settings = tiny_settings(tmp_path)
    settings["eval"]["prompt"] = "autocoa"
    config = to_config(settings)
    assert {row_prompt(config, StageNode(parse_row(r))) for r in ("base", "sft2")} == {"autocoa"}


def test_the_base_row_can_read_another_instruction_than_the_stages(tmp_path):
    # a real instruct model has never seen the short instruction: its base row reads AutoCoA's
    settings = tiny_settings(tmp_path)
    settings["eval"]["base_prompt"] = "autocoa"
    config = to_config(settings)
    assert row_prompt(config, StageNode(parse_row("base"))) == "autocoa"
    assert row_prompt(config, StageNode(parse_row("sft2"))) is None  # trained rows keep their own
