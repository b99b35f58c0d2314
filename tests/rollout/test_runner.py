"""Multi-turn rollouts: batched tool calls, observations appended as ids with no policy mask, the budget."""

import pytest

from coa.rollout.engines.base import Generation, GenerationEngine, SamplingSettings
from coa.rollout.engines.hf import finish
from coa.rollout.engines.stop import end_of_sequence_ids
from coa.formats.action_format import AUTOCOA
from coa.models.tokenizer import train_tokenizer
from coa.rollout.runner import BUDGET_MESSAGE, RolloutRunner, RolloutSettings
from coa.tools.base import Tool

TEXTS = ["<think> I need Ada. <begin_search> Ada </end_search> <search_result> Ada: city Lisbon. </search_result> "
         "Ada's city Lisbon. </think> \\boxed{Lisbon}"] * 4


class ScriptedEngine(GenerationEngine):
    """Plays back fixed turns per prompt (keyed by the prompt's first token), recording what it was given."""

    def __init__(self, tokenizer, turns: dict[int, list[str]]) -> None:
        self.tokenizer = tokenizer
        self.turns = {k: [tokenizer.encode(t, add_special_tokens=False) for t in v] for k, v in turns.items()}
        self.seen: list[list[int]] = []

    def generate(self, prompts: list[list[int]], settings: SamplingSettings, generator=None) -> list[Generation]:
        self.seen += prompts
        return [finish(self.tokenizer, self.turns[p[0]].pop(0), settings) for p in prompts]


class RecordingTool(Tool):
    name = "recording"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def call(self, arguments: list[str]) -> list[str]:
        self.calls.append(list(arguments))
        return [f"{a}: city Lisbon." for a in arguments]


class BrokenTool(Tool):
    name = "broken"

    def call(self, arguments: list[str]) -> list[str]:
        raise TimeoutError("no answer after 5 s")


@pytest.fixture(scope="module", params=[True, False], ids=["tags-one-token", "tags-several-tokens"])
def tokenizer(request):
    tok = train_tokenizer(TEXTS, vocab_size=300, tags_as_tokens=request.param)
    assert (len(tok.encode("</end_search>", add_special_tokens=False)) == 1) is request.param
    return tok


def prompts(tokenizer):
    return [tokenizer.encode("Ada?", add_special_tokens=False), tokenizer.encode("Bob?", add_special_tokens=False)]


def test_actions_of_the_batch_go_to_the_tool_together_and_observations_are_masked(tokenizer):
    a, b = prompts(tokenizer)
    eos = tokenizer.eos_token
    engine = ScriptedEngine(tokenizer, {
        a[0]: ["<think> I need Ada. <begin_search> Ada </end_search>", " Ada's city Lisbon. </think> \\boxed{Lisbon}" + eos],
        b[0]: ["<think> I need Bob. <begin_search> Bob </end_search>", " </think> \\boxed{Lisbon}" + eos],
    })
    tool = RecordingTool()
    ra, rb = RolloutRunner(engine, tool, tokenizer).run([a, b])
    assert tool.calls == [["Ada", "Bob"]]
    observation = tokenizer.encode(AUTOCOA.format_observation("Ada: city Lisbon."), add_special_tokens=False)
    first_turn = tokenizer.encode("<think> I need Ada. <begin_search> Ada </end_search>", add_special_tokens=False)
    assert ra.response_ids[len(first_turn): len(first_turn) + len(observation)] == observation
    assert ra.policy_mask == [1] * len(first_turn) + [0] * len(observation) + [1] * (len(ra.response_ids) - len(first_turn) - len(observation))
    # The second turn continues from the concatenated ids, never a re-tokenised text.
    assert engine.seen[2] == a + first_turn + observation
    assert (ra.actions, ra.truncated, ra.done) == (["Ada"], False, True)


def test_past_the_budget_the_policy_gets_the_limit_message(tokenizer):
    a, _ = prompts(tokenizer)
    search = "<begin_search> Ada </end_search>"
    engine = ScriptedEngine(tokenizer, {a[0]: [search, search, " </think> \\boxed{x}" + tokenizer.eos_token]})
    tool = RecordingTool()
    (r,) = RolloutRunner(engine, tool, tokenizer, settings=RolloutSettings(max_actions=1)).run([a])
    assert tool.calls == [["Ada"]]
    assert r.observations == ["Ada: city Lisbon.", BUDGET_MESSAGE]
    assert r.actions == ["Ada", "Ada"] and r.tool_calls == 1 and not r.truncated


def test_a_failing_tool_becomes_an_observation(tokenizer):
    a, _ = prompts(tokenizer)
    engine = ScriptedEngine(tokenizer, {a[0]: ["<begin_search> Ada </end_search>", " \\boxed{x}" + tokenizer.eos_token]})
    (r,) = RolloutRunner(engine, BrokenTool(), tokenizer).run([a])
    assert r.observations == ["Tool broken failed: TimeoutError: no answer after 5 s"]
    assert r.done and not r.truncated


def test_running_out_of_turns_marks_truncated(tokenizer):
    a, _ = prompts(tokenizer)
    engine = ScriptedEngine(tokenizer, {a[0]: ["<think> I need"]})
    (r,) = RolloutRunner(engine, RecordingTool(), tokenizer).run([a])
    assert r.truncated and r.actions == []


def test_a_turn_ends_at_the_chat_templates_end_of_turn_token_when_it_is_not_eos():
    # base Qwen2.5: turns end with <|im_end|> while eos is another token
    tok = train_tokenizer(TEXTS, vocab_size=300)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    tok.chat_template = (
        "{% for m in messages %}{{ '<|user|>' if m['role'] == 'user' else '<|assistant|>' }}{{ m['content'] }}<|im_end|>"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end != tok.eos_token_id and end_of_sequence_ids(tok) == (tok.eos_token_id, im_end)
    a = tok.encode("Ada?", add_special_tokens=False)
    engine = ScriptedEngine(tok, {a[0]: ["</think> \\boxed{Lisbon}<|im_end|> and then more text"]})
    (r,) = RolloutRunner(engine, RecordingTool(), tok).run([a])
    assert r.done and not r.truncated and r.response_ids[-1] == im_end
    assert tok.decode(r.response_ids, skip_special_tokens=True) == "</think> \\boxed{Lisbon}"


def test_a_stray_close_tag_sends_no_old_observation_to_the_tool(tokenizer):
    a, _ = prompts(tokenizer)
    stray = "<begin_search> Ada </end_search>"
    engine = ScriptedEngine(tokenizer, {a[0]: [stray, " so </end_search>", " \\boxed{x}" + tokenizer.eos_token]})
    tool = RecordingTool()
    (r,) = RolloutRunner(engine, tool, tokenizer).run([a])
    assert tool.calls == [["Ada"], [""]]  # the second "action" has no argument, not the first observation


def test_tags_added_as_special_tokens_stay_in_the_text():
    tok = train_tokenizer(TEXTS, vocab_size=300, tags_as_tokens=False)
    tok.add_special_tokens({"additional_special_tokens": ["<begin_search>", "</end_search>"]})
    a = tok.encode("Ada?", add_special_tokens=False)
    engine = ScriptedEngine(tok, {a[0]: ["<think> <begin_search> Ada </end_search>", " </think> \\boxed{Lisbon}" + tok.eos_token]})
    runner = RolloutRunner(engine, RecordingTool(), tok)
    (r,) = runner.run([a])
    assert r.actions == ["Ada"] and runner.text(r).startswith("<think> <begin_search> Ada </end_search>")
    assert runner.text(r).endswith("\\boxed{Lisbon}")


def test_each_episodes_turn_is_cut_to_its_own_token_budget_not_its_neighbours(tokenizer):
    a, b = prompts(tokenizer)
    enc = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    a_first = "<think> I need Ada. I need Ada. I need Ada. <begin_search> Ada </end_search>"  # a long first turn
    b_first = "<begin_search> Bob </end_search>"
    answer = " Ada's city Lisbon. </think> \\boxed{Lisbon}" + tokenizer.eos_token
    engine = ScriptedEngine(tokenizer, {a[0]: [a_first, answer], b[0]: [b_first, answer]})
    observation = enc(AUTOCOA.format_observation("Ada: city Lisbon."))
    budget = len(enc(a_first)) + len(observation) + len(enc(answer)) - 2  # a runs out 2 tokens before its answer ends
    settings = RolloutSettings(max_actions=2, max_turn_tokens=64, max_response_tokens=budget)
    ra, rb = RolloutRunner(engine, RecordingTool(), tokenizer, settings=settings).run([a, b])
    assert len(ra.response_ids) == budget and ra.truncated  # cut to its own budget
    assert rb.response_ids[-len(enc(answer)):] == enc(answer) and not rb.truncated  # whole: b had tokens to spare
    assert tokenizer.decode(ra.response_ids[-3:]) in tokenizer.decode(enc(answer))
