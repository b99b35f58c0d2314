"""Reward classes by name or class path, a user's subclass, and the format penalty's one judge (parse_output)."""

import pytest

from coa.formats.action_format import AUTOCOA, SEARCH_R1
from coa.rewards.autocoa import AutoCoAReward
from coa.rewards.autocoa_lenient import AutoCoALenientReward
from coa.rewards.base import REWARDS, Reward, registered_rewards, reward_from_config
from coa.rewards.em import ExactMatchReward, F1Reward

GOOD = "<think> x <begin_search> Ada </end_search> <search_result> in Lisbon </search_result> </think> \\boxed{Lisbon}"


@pytest.fixture(autouse=True)
def private_registry(monkeypatch):
    """Rewards defined by a test register into a copy, so the real registry stays as shipped."""
    monkeypatch.setattr(REWARDS, "classes", dict(registered_rewards()))


def test_shipped_rewards_are_registered_by_name():
    assert registered_rewards() == {
        "autocoa": AutoCoAReward, "autocoa_lenient": AutoCoALenientReward, "exact_match": ExactMatchReward, "f1": F1Reward,
    }
    with pytest.raises(ValueError, match="use one of them, or a class path such as 'my_pkg.rewards.MyReward'") as e:
        reward_from_config("exact")
    assert "(autocoa, autocoa_lenient, exact_match, f1)" in str(e.value)


def test_build_by_name_by_class_path_or_instance():
    reward = reward_from_config("exact_match")
    assert isinstance(reward, ExactMatchReward) and reward.format_penalty == 0.0 and reward.fmt is AUTOCOA
    reward = reward_from_config(
        {"class_path": "coa.rewards.em.F1Reward", "init_args": {"format_penalty": 0.5, "fmt": "search_r1"}}
    )
    assert isinstance(reward, F1Reward) and reward.format_penalty == 0.5 and reward.fmt is SEARCH_R1
    assert reward_from_config(reward) is reward


def test_exact_match_and_f1_read_the_answer_span():
    responses = [GOOD, "<think> x </think> \\boxed{Lisbon Portugal}", "<think> x </think> Lisbon"]
    golds = [["Lisbon"], ["Lisbon"], ["Lisbon"]]
    assert reward_from_config("exact_match")(responses, golds, ["", "", ""]) == [1.0, 0.0, 0.0]
    # F1 of "lisbon portugal" vs "lisbon": P = 1/2, R = 1 -> 2PR/(P+R) = 2/3
    assert reward_from_config("f1")(responses, golds, ["", "", ""]) == [1.0, pytest.approx(2 / 3), 0.0]
    search_r1 = reward_from_config({"class_path": "exact_match", "init_args": {"fmt": "search_r1"}})
    assert search_r1(["<think> x </think> <answer> Lisbon </answer>"], [["Lisbon"]], [""]) == [1.0]


def test_a_user_subclass_registers_and_builds_by_name():
    class Length(Reward):
        name = "length"

        def __init__(self, per_char: float = 1.0, format_penalty: float = 0.0) -> None:
            super().__init__(format_penalty=format_penalty)
            self.per_char = per_char

        def score(self, response: str, golds: list[str], prompt: str) -> float:
            return self.per_char * len(response)

    assert registered_rewards()["length"] is Length
    reward = reward_from_config({"class_path": "length", "init_args": {"per_char": 0.5, "format_penalty": 2}})
    assert reward(["abcd"], [["x"]], [""]) == [0.5 * 4 - 2]  # "abcd" has no answer span: penalised
    with pytest.raises(ValueError, match=r"init_args \{'per_chr': 1\} do not fit: Length accepts per_char=1.0, format_penalty=0.0"):
        reward_from_config({"class_path": "length", "init_args": {"per_chr": 1}})


def test_a_duplicate_name_raises_naming_both_classes():
    with pytest.raises(ValueError) as e:

        class MyExactMatch(Reward):
            name = "exact_match"

            def score(self, response: str, golds: list[str], prompt: str) -> float:
                return 0.0

    message = str(e.value)
    assert "reward name 'exact_match' is taken by coa.rewards.em.ExactMatchReward" in message
    assert "test_a_duplicate_name_raises_naming_both_classes.<locals>.MyExactMatch" in message


@pytest.mark.parametrize(
    "response",
    [
        GOOD,
        "<think> x </think> \\boxed{Lisbon",  # unclosed_answer, no_answer
        "<think> x </think> Lisbon",  # no_answer
        "<think> x \\boxed{Lisbon}",  # unclosed_think
        "<think> x </think> \\boxed{Lisbon} <begin_search> y </end_search>",  # action_after_answer
        "<think> x <begin_search> </end_search> </think> \\boxed{Lisbon}",  # empty_action
        "<think> x </end_search> </think> \\boxed{Lisbon}",  # stray_close
        "</think> \\boxed{Lisbon}",  # the prompt opened thinking: fine
    ],
)
@pytest.mark.parametrize("name", ["exact_match", "f1", "autocoa", "autocoa_lenient"])
def test_the_penalty_applies_exactly_when_parse_output_reports_errors(name, response):
    plain = reward_from_config(name)
    penalised = reward_from_config({"class_path": name, "init_args": {"format_penalty": 0.25}})
    errors = AUTOCOA.parse_output(response).errors
    assert penalised.format_errors_of(response) == errors
    [score] = plain([response], [["Lisbon"]], [""])
    assert penalised([response], [["Lisbon"]], [""]) == [score - 0.25 if errors else score]


def test_the_format_judge_reads_the_response_not_the_prompt():
    reward = reward_from_config({"class_path": "autocoa", "init_args": {"format_penalty": 1.0}})
    # scored on prompt + response (the prompt's </think> counts), judged on the response (no </think>: penalised)
    assert reward(["It is \\boxed{Lisbon}"], [["Lisbon"]], ["<think></think> Answer in \\boxed{}."]) == [0.0]
    assert reward.format_errors_of("It is \\boxed{Lisbon}") == ["unclosed_think"]


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ({"class_path": "f1", "init_args": {"format_penalty": -1}}, ValueError, "format_penalty=-1 must be a finite number >= 0"),
        ({"class_path": "f1", "init_args": {"fmt": "react"}}, ValueError, "action format 'react' is not a built-in"),
        ({"class_path": "f1", "init_args": {"penalty": 1}}, ValueError,
         "F1Reward accepts format_penalty=0.0, fmt='autocoa'"),
        ("coa.tools.calculator.Calculator", TypeError, "is not a subclass of coa.rewards.base.Reward"),
        ("coa.rewards.base.Reward", TypeError, "is abstract; implement score"),
        ({"init_args": {}}, ValueError, "'class_path' (a reward name or 'pkg.mod.Class') is missing"),
    ],
)
def test_clear_errors(spec, error, message):
    with pytest.raises(error) as e:
        reward_from_config(spec)
    assert message in str(e.value)


def test_batch_lengths_must_agree():
    with pytest.raises(ValueError, match="got 2 responses, 1 gold lists and 2 prompts; pass one of each per response"):
        reward_from_config("f1")(["a", "b"], [["a"]], ["", ""])
