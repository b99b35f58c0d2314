"""The agent card: an exported model says how it acts, and `coa eval` / the datamodules use it unless told otherwise."""

import json

import pytest

from coa.formats.action_format import SEARCH_R1
from coa.models.agent_card import CARD_FILE, card_for, read_card, resolve_prompt, write_card


def test_round_trip_and_defaults(tmp_path):
    assert read_card(tmp_path) is None and resolve_prompt(None, tmp_path, "x") == "autocoa"
    write_card(tmp_path, card_for("short", SEARCH_R1))
    card = read_card(tmp_path)
    assert card.prompt == "short" and card.tags() == SEARCH_R1 and card.stop_strings == ["</search>"]
    assert json.loads((tmp_path / CARD_FILE).read_text())["stop_strings"] == ["</search>"]
    assert resolve_prompt(None, tmp_path, "coa eval") == "short"
    with pytest.warns(UserWarning, match="coa eval: prompt 'autocoa' overrides .*coa_agent.json.*'short'"):
        assert resolve_prompt("autocoa", tmp_path, "coa eval") == "autocoa"


def test_a_broken_card_names_the_file(tmp_path):
    (tmp_path / CARD_FILE).write_text("{}")
    with pytest.raises(ValueError, match="coa_agent.json: not a coa agent card"):
        read_card(tmp_path)
