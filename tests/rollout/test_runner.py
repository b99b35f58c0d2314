"""Multi-turn rollouts: batched tool calls, observations appended as ids with no policy mask, the budget."""

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from coa.rollout.engines.base import Generation, GenerationEngine, SamplingSettings
from coa.rollout.engines.hf import finish
from coa.rollout.engines.stop import end_of_sequence_ids
from coa.formats.action_format import AUTOCOA
from coa.models.tokenizer import train_tokenizer
from coa.rollout.batch import collate_rollouts
from coa.rollout.runner import BUDGET_MESSAGE, RolloutRunner, RolloutSettings
from coa.tools.base import Tool

QWEN2_SPLIT = (  # Qwen2's pre-tokenizer pattern (its tokenizer.json)
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
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


def test_running_out_of_response_tokens_marks_truncated(tokenizer):
    a, _ = prompts(tokenizer)
    first, second = "<think> I need Ada", " and more and more and more"
    budget = len(tokenizer.encode(first, add_special_tokens=False)) + 2
    engine = ScriptedEngine(tokenizer, {a[0]: [first, second]})  # turns that stop at max_turn_tokens ("length")
    (r,) = RolloutRunner(engine, RecordingTool(), tokenizer, settings=RolloutSettings(max_response_tokens=budget)).run([a])
    assert r.truncated and r.actions == [] and len(r.response_ids) == budget and len(engine.seen) == 2


def test_a_turn_cut_at_max_turn_tokens_goes_on_while_the_episode_has_tokens_left(tokenizer):
    a, _ = prompts(tokenizer)
    eos = tokenizer.eos_token
    # the first turn reaches max_turn_tokens in the middle of its thinking; the model goes on in the next call
    turns = ["<think> I need Ada and", " more. <begin_search> Ada </end_search>", " Lisbon. </think> \\boxed{Lisbon}" + eos]
    engine = ScriptedEngine(tokenizer, {a[0]: turns})
    tool = RecordingTool()
    (r,) = RolloutRunner(engine, tool, tokenizer, settings=RolloutSettings(max_turn_tokens=8)).run([a])
    assert tool.calls == [["Ada"]] and r.actions == ["Ada"]
    assert (r.done, r.truncated) == (True, False)
    runner_text = RolloutRunner(engine, tool, tokenizer).text(r)
    assert runner_text.startswith("<think> I need Ada and more. <begin_search> Ada </end_search>")
    assert runner_text.endswith("\\boxed{Lisbon}")


def test_an_action_close_split_across_two_turns_is_found_and_cut(tokenizer):
    a, _ = prompts(tokenizer)
    eos = tokenizer.eos_token
    turns = ["<think> I need Ada. <begin_search> Ada </end_sea", "rch> and the model wrote on", " \\boxed{Lisbon}" + eos]
    engine = ScriptedEngine(tokenizer, {a[0]: turns})
    tool = RecordingTool()
    runner = RolloutRunner(engine, tool, tokenizer)
    (r,) = runner.run([a])
    assert tool.calls == [["Ada"]] and r.observations == ["Ada: city Lisbon."]
    observation = AUTOCOA.format_observation("Ada: city Lisbon.")
    assert runner.text(r) == "<think> I need Ada. <begin_search> Ada </end_search>" + observation + " \\boxed{Lisbon}"
    assert not r.truncated


def qwen2_like_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A byte-level BPE split as Qwen2's tokenizer splits text (its pre-tokenizer pattern): punctuation takes the
    line breaks after it, so ">\n\n" can be one token, as it is in Qwen's vocabulary."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>")


def test_a_token_the_stop_string_ends_inside_gets_no_policy_mask():
    # AutoCoA's format writes "</end_search>\n\n"; in Qwen's tokenizer ">\n\n" is one token, as here: the stop
    # string ends inside it, and the ">" kept in its place was never sampled
    texts = ["<think> I need Ada. <begin_search> Ada </end_search>\n\nAda's city.\n\n</think> \\boxed{Lisbon}"] * 8
    tok = qwen2_like_tokenizer(texts)
    assert len(tok.encode(">\n\n", add_special_tokens=False)) == 1
    a = tok.encode("Ada?", add_special_tokens=False)
    engine = ScriptedEngine(tok, {a[0]: ["<think> I need Ada. <begin_search> Ada </end_search>\n\nAda", " \\boxed{x}" + tok.eos_token]})
    (r,) = RolloutRunner(engine, RecordingTool(), tok).run([a])
    first_turn = tok.encode("<think> I need Ada. <begin_search> Ada </end_search", add_special_tokens=False)
    greater = tok.encode(">", add_special_tokens=False)
    assert r.response_ids[: len(first_turn) + 1] == first_turn + greater
    assert r.policy_mask[: len(first_turn) + 1] == [1] * len(first_turn) + [0]  # sampled tokens train, ">" does not
    batch = collate_rollouts([r], [1.0], 1, tok.pad_token_id)
    assert batch.loss_mask[0, len(a) + len(first_turn)] == 0 and batch.loss_mask[0, len(a)] == 1


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
