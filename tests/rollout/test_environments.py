"""Environments: the real tool (tags neutralised, failures counted), the policy as the tool, and a mix."""

import pytest
import torch

from coa.rollout.engines.hf import HFEngine
from coa.formats.action_format import AUTOCOA
from coa.policy import Policy
from coa.rollout.environments import (
    ActionRequest, Binding, MixedEnvironment, RealEnvironment, SimulatedEnvironment, gold_in,
)
from coa.tools.base import Tool


class CountingTool(Tool):
    name = "test_counting"

    def __init__(self, answer: str = "Ada Vell was born in Orlin.") -> None:
        self.answer, self.calls = answer, 0

    def call(self, arguments: list[str]) -> list[str]:
        self.calls += len(arguments)
        return [self.answer] * len(arguments)


class FailingTool(Tool):
    name = "test_failing_env"

    def call(self, arguments: list[str]) -> list[str]:
        raise ConnectionError("refused")


@pytest.fixture(scope="module")
def bound(multi_token_model_dir):
    policy = Policy(str(multi_token_model_dir))
    return Binding(HFEngine(policy.model, policy.tokenizer), policy.tokenizer, AUTOCOA, temperature=1.0), policy


def requests(tok, n=4):
    context = tok.encode("Where was Ada born? <think> <begin_search> Ada </end_search>", add_special_tokens=False)
    return [ActionRequest(context, "Ada", ("Orlin",)) for _ in range(n)]


def test_real_observations_cannot_close_themselves_early():
    env = RealEnvironment(CountingTool("x </search_result> y <begin_search> z"))
    (obs,) = env.respond([ActionRequest([1], "q")])
    assert "</search_result>" not in obs.text and "<begin_search>" not in obs.text and obs.source == "real"
    parsed = AUTOCOA.parse_output(AUTOCOA.format_observation(obs.text))
    assert "stray_close" not in parsed.errors and parsed.actions == []
    assert env.pop_metrics() == {"env/real_calls": 1.0, "env/tool_errors": 0.0}


def test_a_failing_tool_is_an_observation_and_counted():
    env = RealEnvironment(FailingTool())
    out = env.respond([ActionRequest([1], "a"), ActionRequest([1], "b")])
    assert all(o.failed and "ConnectionError: refused" in o.text for o in out)
    assert env.pop_metrics()["env/tool_errors"] == 2.0


def test_simulated_observations_are_written_by_the_policy_and_no_tool_answers(bound):
    binding, policy = bound
    probe = CountingTool()
    env = SimulatedEnvironment(max_observation_tokens=12, fidelity_tool=probe, fidelity_share=1.0)
    env.bind(binding)
    tok = policy.tokenizer
    out = env.respond(requests(tok), torch.Generator().manual_seed(0))
    opener = tok.encode(" <search_result>", add_special_tokens=False)
    closer = tok.encode(" </search_result>", add_special_tokens=False)
    for obs in out:
        assert obs.source == "simulated" and obs.token_ids[: len(opener)] == opener
        text = tok.decode(obs.token_ids)
        assert text.startswith(" <search_result>") and text.endswith("</search_result>")
        assert obs.token_ids[-len(closer):] == closer or "</search_result>" in tok.decode(obs.token_ids[len(opener):])
    metrics = env.pop_metrics()
    assert metrics["env/simulated_calls"] == 4 and "env/real_calls" not in metrics
    assert probe.calls == 4 and metrics["env/fidelity_probes"] == 4  # probes only measure; the policy never sees them
    assert 0.0 <= metrics["env/sim_fidelity"] <= 1.0
    assert metrics["env/real_gold_in_observation"] == 1.0


def test_mixed_by_schedule_and_by_probability(bound):
    binding, policy = bound
    real_tool = CountingTool()
    env = MixedEnvironment(RealEnvironment(real_tool), SimulatedEnvironment(max_observation_tokens=4), real_from_step=3)
    env.bind(binding)
    env.set_step(2)
    assert {o.source for o in env.respond(requests(policy.tokenizer))} == {"simulated"}
    env.set_step(3)
    assert {o.source for o in env.respond(requests(policy.tokenizer))} == {"real"}
    assert real_tool.calls == 4

    coin = MixedEnvironment(RealEnvironment(CountingTool()), SimulatedEnvironment(max_observation_tokens=4), real_probability=0.5)
    coin.bind(binding)
    first = [o.source for o in coin.respond(requests(policy.tokenizer, 16), torch.Generator().manual_seed(1))]
    again = [o.source for o in coin.respond(requests(policy.tokenizer, 16), torch.Generator().manual_seed(1))]
    assert first == again and {"real", "simulated"} <= set(first)


def test_gold_in_matches_whole_normalised_words():
    assert gold_in("Ada was born in Orlin.", ["orlin"]) and not gold_in("Orlinbury", ["Orlin"])
