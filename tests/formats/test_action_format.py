from dataclasses import astuple, fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coa.formats.action_format import (
    ACTION_FORMATS, AUTOCOA, FORMAT_ERRORS, SEARCH_R1, ActionFormat, ParsedOutput, action_format,
)

# --- the helpers other modules rely on keep their behaviour -----------------------------------------


def test_format_observation_is_exact_and_has_no_trailing_space():
    assert AUTOCOA.format_observation("(1) Ada.") == " <search_result> (1) Ada. </search_result>"
    assert SEARCH_R1.format_observation("x") == " <information> x </information>"


def test_last_action_extract_answer_count_actions():
    assert AUTOCOA.last_action("<think> <begin_search>  Ada city </end_search> ") == "Ada city"
    assert AUTOCOA.last_action("<begin_search> Ada </end_search> more") is None
    assert AUTOCOA.extract_answer("\\boxed{a} then \\boxed{b{c}d}") == "b{c}d"
    assert AUTOCOA.extract_answer("\\boxed{open") is None
    assert SEARCH_R1.extract_answer("<answer> Lisbon </answer>") == "Lisbon"
    assert AUTOCOA.count_actions("<begin_search> a </end_search> <begin_search> b") == 2


def test_parse_output_is_the_one_format_judge():
    assert AUTOCOA.parse_output("<think> x </think> \\boxed{1}").errors == []
    assert AUTOCOA.parse_output("<think> <begin_search> q").errors == ["no_answer", "unclosed_action", "unclosed_think"]
    assert AUTOCOA.parse_output("</think> \\boxed{1} <begin_search> q </end_search>").errors == ["action_after_answer"]


# --- built-ins, lookup, validation -------------------------------------------------------------------


def test_search_r1_tags():
    assert (SEARCH_R1.action_open, SEARCH_R1.action_close) == ("<search>", "</search>")
    assert (SEARCH_R1.observation_open, SEARCH_R1.observation_close) == ("<information>", "</information>")
    assert (SEARCH_R1.answer_open, SEARCH_R1.answer_close) == ("<answer>", "</answer>")
    assert (SEARCH_R1.think_open, SEARCH_R1.think_close) == ("<think>", "</think>")


def test_action_format_lookup_by_name_format_or_mapping():
    assert action_format("autocoa") is AUTOCOA
    assert action_format("Search-R1") is SEARCH_R1
    assert action_format(SEARCH_R1) is SEARCH_R1
    custom = action_format({"action_open": "<calc>", "action_close": "</calc>"})
    assert custom == ActionFormat(action_open="<calc>", action_close="</calc>")
    assert custom.answer_open == "\\boxed{"  # unset tags keep AutoCoA's
    assert set(ACTION_FORMATS) == {"autocoa", "search_r1"}


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("react", ValueError, "not a built-in (autocoa, search_r1)"),
        ({"action_opn": "<a>"}, ValueError, "unknown field(s) action_opn"),
        (3, TypeError, "got int"),
    ],
)
def test_action_format_lookup_errors(spec, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        action_format(spec)


def test_validation_names_the_field():
    with pytest.raises(ValueError, match="ActionFormat.action_close='' is empty"):
        ActionFormat(action_close="")
    with pytest.raises(ValueError, match="ActionFormat.answer_close='  ' is empty"):
        ActionFormat(answer_close="  ")
    with pytest.raises(ValueError, match=r"ActionFormat.observation_open='<think>' repeats ActionFormat.think_open"):
        ActionFormat(observation_open="<think>")
    with pytest.raises(TypeError, match="ActionFormat.think_open=3 must be a string"):
        ActionFormat(think_open=3)


def test_jsonargparse_sets_a_name_or_tags():
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--fmt", type=str | ActionFormat, default="autocoa")
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    assert action_format(instantiate(parser.parse_object({"fmt": "search_r1"})).fmt) is SEARCH_R1
    cfg = parser.parse_object({"fmt": {"action_open": "<calc>", "action_close": "</calc>"}})
    assert action_format(instantiate(cfg).fmt) == ActionFormat(action_open="<calc>", action_close="</calc>")
    assert [f.type for f in fields(ActionFormat)] == ["str"] * 8  # plain typed fields: the signature is the schema


# --- parse_output, by hand ---------------------------------------------------------------------------


def parsed(action, answer, errors=(), actions=None):
    return ParsedOutput(action, answer, list(errors), actions if actions is not None else ([action] if action is not None else []))


def test_parse_autocoa_well_formed():
    text = (
        "<think> I need Ada. <begin_search> Ada city </end_search> <search_result> (1) Ada: city Lisbon. "
        "</search_result> So Lisbon. </think> \\boxed{Lisbon}"
    )
    assert AUTOCOA.parse_output(text) == parsed("Ada city", "Lisbon")


def test_parse_search_r1_actions_between_think_blocks():
    text = (
        "<think> need Ada </think> <search> Ada </search> <information> Ada: Lisbon </information>"
        " <think> need Bob </think> <search> Bob </search> <information> Bob: Oslo </information>"
        " <think> done </think> <answer> Lisbon </answer>"
    )
    assert SEARCH_R1.parse_output(text) == parsed("Bob", "Lisbon", actions=["Ada", "Bob"])


def test_observations_are_opaque():
    # the tool's text holds tags; none of them counts
    text = "<think> <begin_search> q </end_search> <search_result> \\boxed{Paris} <begin_search> x </search_result> </think> \\boxed{Rome}"
    assert AUTOCOA.parse_output(text) == parsed("q", "Rome")


def test_think_close_without_open_is_fine():
    # chat templates often open thinking in the prompt
    assert SEARCH_R1.parse_output("so Lisbon </think> <answer> Lisbon </answer>") == parsed(None, "Lisbon")


def test_answer_braces_nest_and_last_span_wins():
    assert AUTOCOA.parse_output("</think> \\boxed{\\frac{1}{2}}").answer == "\\frac{1}{2}"
    assert AUTOCOA.parse_output("</think> \\boxed{a} \\boxed{ b }").answer == "b"
    assert AUTOCOA.parse_output("</think> \\boxed{}") == parsed(None, "")


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        (AUTOCOA, "", parsed(None, None, ["no_answer", "unclosed_think"])),
        (AUTOCOA, "<think> x", parsed(None, None, ["no_answer", "unclosed_think"])),
        # the action is cut by </think>: dropped, the answer still read
        (AUTOCOA, "<think> <begin_search> Ada </think> \\boxed{x}", parsed(None, "x", ["unclosed_action"])),
        (AUTOCOA, "<think> <begin_search> Ada", parsed(None, None, ["no_answer", "unclosed_action", "unclosed_think"])),
        (AUTOCOA, "</think> \\boxed{a} \\boxed{b", parsed(None, None, ["no_answer", "unclosed_answer"])),
        (SEARCH_R1, "</think> <search> a <search> b </search> <answer>x</answer>", parsed("b", "x", ["nested_action"])),
        (SEARCH_R1, "</think> <answer>x</answer> <search> q </search>", parsed("q", "x", ["action_after_answer"])),
        (SEARCH_R1, "</think> <search> </search> <answer>x</answer>", parsed("", "x", ["empty_action"])),
        (SEARCH_R1, "</think> </search> </information> <answer>x</answer>", parsed(None, "x", ["stray_close"])),
        (SEARCH_R1, "</think> <search> q </search> <information> half", parsed("q", None, ["no_answer", "unclosed_observation"])),
        (SEARCH_R1, "<think> a </think> <think> b <answer>x</answer>", parsed(None, "x", ["unclosed_think"])),
    ],
)
def test_parse_named_errors(fmt, text, expected):
    assert fmt.parse_output(text) == expected
    assert set(expected.errors) <= set(FORMAT_ERRORS)


# --- neutralize: a tool's text can hold no tag -------------------------------------------------------

# A user format whose tags overlap ("[[" and "[o[", "]]" and "]o]") and one whose tag holds a space.
OVERLAPPING = ActionFormat(
    think_open="[t]", think_close="[/t]", action_open="[[", action_close="]]",
    observation_open="[o[", observation_close="]o]", answer_open="ANS:", answer_close=";",
)
SPACED = ActionFormat(answer_open="Final answer:", answer_close="END")
NEUTRALIZED_FORMATS = [AUTOCOA, SEARCH_R1, OVERLAPPING, SPACED]


def cut_tags(fmt: ActionFormat) -> list[str]:
    return [tag for tag in astuple(fmt) if len(tag) > 1]


def test_neutralize_inserts_a_space_after_each_tags_first_character():
    assert AUTOCOA.neutralize("x </search_result> \\boxed{1} y") == "x < /search_result> \\ boxed{1} y"
    assert SEARCH_R1.neutralize("<answer>a</answer>") == "< answer>a< /answer>"
    # breaking the inner close must not leave or make one: "<" + "</search_result>" + "search_result>"
    assert AUTOCOA.neutralize("<</search_result>search_result>") == "<< /search_result>search_result>"
    assert OVERLAPPING.neutralize("[[o[") == "[ [ o[" and OVERLAPPING.neutralize("]]o]") == "] ] o]"
    assert SPACED.neutralize("Final answer: x") == "F\u200binal answer: x"  # a tag holds a space: zero-width space


@pytest.mark.parametrize("fmt", [AUTOCOA, SEARCH_R1])
def test_neutralize_leaves_no_tag_in_text_full_of_tags(fmt):
    tags = cut_tags(fmt)
    text = " ".join(tags) + "".join(tags) * 3 + "".join(t[0] + t + t[1:] for t in tags) + "".join(t[:-1] + t for t in tags)
    out = fmt.neutralize(text)
    assert [t for t in tags if t in out] == []
    assert fmt.neutralize(out) == out
    assert fmt.parse_output(fmt.format_observation(out)) == parsed(None, None, ["no_answer", "unclosed_think"])


@pytest.mark.parametrize("fmt", [AUTOCOA, SEARCH_R1])
def test_neutralize_leaves_plain_text_and_one_character_tags(fmt):
    text = "Ada (1815-1852) lived in London; a < b, c > d, {x}, \\frac{1}{2}, </ >, <search"
    assert fmt.neutralize(text) == text
    assert fmt.neutralize("") == ""
    assert AUTOCOA.neutralize("}}") == "}}"  # AutoCoA's answer close is one character: it cannot be cut


def tool_texts(fmt: ActionFormat) -> st.SearchStrategy[str]:
    """Strings mixing `fmt`'s tags, their halves, the separators and arbitrary characters."""
    tags = astuple(fmt)
    halves = [t[: len(t) // 2] for t in tags] + [t[len(t) // 2:] for t in tags]
    fragment = st.one_of(
        st.sampled_from(tags), st.sampled_from(tags), st.sampled_from(halves),
        st.sampled_from([" ", "\u200b", "<", "/", ">", "{", "}", "[", "]"]), st.text(max_size=4),
    )
    return st.lists(fragment, max_size=30).map("".join)


@settings(max_examples=2000, deadline=None, database=None)
@given(data=st.data(), fmt=st.sampled_from(NEUTRALIZED_FORMATS))
def test_neutralized_tool_text_is_one_observation(data, fmt: ActionFormat):
    text = data.draw(tool_texts(fmt), label="tool text")
    out = fmt.neutralize(text)
    assert [t for t in cut_tags(fmt) if t in out] == []
    assert fmt.neutralize(out) == out
    if not any(t in text for t in cut_tags(fmt)):
        assert out == text
    observation = fmt.format_observation(out)
    parsed_observation = fmt.parse_output(observation)
    assert parsed_observation.actions == [] and set(parsed_observation.errors) <= {"no_answer", "unclosed_think"}
    # the observation closes where format_observation closed it: the policy's answer after it is read
    answer = f" {fmt.think_close} {fmt.answer_open}x{fmt.answer_close}"
    assert fmt.parse_output(observation + answer) == parsed(None, "x")
    assert fmt.extract_answer(out) is None and fmt.last_action(out) is None
