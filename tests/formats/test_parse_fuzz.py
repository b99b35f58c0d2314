"""`ActionFormat.parse_output` is total and consistent on anything a model can emit; well-formed outputs round-trip."""

from dataclasses import astuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coa.formats.action_format import AUTOCOA, FORMAT_ERRORS, SEARCH_R1, ActionFormat, ParsedOutput

FUZZ_EXAMPLES = 10_000
# A user format whose tags overlap on purpose: "[" is a prefix of "[[" and "[t]", stressing longest-match.
BRACKETS = ActionFormat(
    think_open="[t]", think_close="[/t]", action_open="[[", action_close="]]",
    observation_open="[", observation_close="]", answer_open="ANS:", answer_close=";",
)
FORMATS = [AUTOCOA, SEARCH_R1, BRACKETS]
TAG_POOL = sorted({tag for fmt in FORMATS for tag in astuple(fmt)} | {"{", "}", "{}", "\\boxed", "<", "</", ">", " ", "\n"})



def fuzzed_outputs(fmt: ActionFormat) -> st.SearchStrategy[str]:
    """Strings mixing `fmt`'s tags (often, so actions and answers open and close), other formats' tags,
    braces, near-miss tags and arbitrary unicode."""
    fragment = st.one_of(
        st.sampled_from(astuple(fmt)),
        st.sampled_from(astuple(fmt)),
        st.sampled_from(TAG_POOL),
        st.text(max_size=6),  # any unicode
        st.text(alphabet="{}<>/\\ab ", max_size=6),  # near-miss tags and brace runs
    )
    return st.lists(fragment, max_size=40).map("".join)


model_outputs = st.sampled_from(FORMATS).flatmap(lambda fmt: st.tuples(st.just(fmt), fuzzed_outputs(fmt)))
ACTION_ERRORS = {"unclosed_action", "nested_action", "empty_action", "action_after_answer"}


def assert_consistent(fmt: ActionFormat, text: str, out: ParsedOutput) -> None:
    assert isinstance(out, ParsedOutput)
    assert out == fmt.parse_output(text)  # deterministic
    assert out.errors == [e for e in FORMAT_ERRORS if e in out.errors]  # known names, once each, fixed order
    assert (out.answer is None) == ("no_answer" in out.errors)
    assert out.ok == (not out.errors) and (not out.ok or out.answer is not None)
    assert out.action == (out.actions[-1] if out.actions else None)
    assert ("empty_action" in out.errors) == ("" in out.actions)
    for span in [*out.actions, *([out.answer] if out.answer is not None else [])]:
        assert span == span.strip() and span in text
    if "unclosed_answer" in out.errors:
        assert out.answer is None
    if fmt.action_open not in text:
        assert out.actions == [] and not ACTION_ERRORS & set(out.errors)
    if fmt.think_close not in text:
        assert "unclosed_think" in out.errors
    if fmt.answer_open not in text:
        assert out.answer is None
    if fmt is not BRACKETS and fmt.observation_open not in text:
        assert out.answer == fmt.extract_answer(text)  # same answer rule as the helper the rewards use


def test_parse_output_is_total_and_consistent_on_fuzzed_text():
    seen = []

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(example=model_outputs)
    def check(example: tuple[ActionFormat, str]) -> None:
        fmt, text = example
        seen.append(text)
        assert_consistent(fmt, text, fmt.parse_output(text))

    check()
    print(f"parse_output fuzz: {len(seen)} examples")
    assert len(seen) >= FUZZ_EXAMPLES


def clean_text(fmt: ActionFormat, braces: bool = True):
    """Stripped, non-empty unicode text holding no tag of `fmt` (and no brace unless `braces`)."""
    forbidden = [*astuple(fmt), *([] if braces else ["{", "}"])]
    return (
        st.text(min_size=1, max_size=12).map(str.strip)
        .filter(lambda s: s and not any(t in s for t in forbidden))
    )


def answers(fmt: ActionFormat):
    """Answer texts; balanced braces inside (`\\frac{1}{2}`), which `\\boxed{` must nest."""
    return st.recursive(
        clean_text(fmt, braces=False),
        lambda inner: st.tuples(inner, inner).map(lambda ab: f"{ab[0]}{{{ab[1]}}}"),
        max_leaves=4,
    )


@settings(max_examples=500, deadline=None, database=None)
@given(data=st.data(), fmt=st.sampled_from(FORMATS), inside_think=st.booleans())
def test_well_formed_outputs_round_trip(data, fmt: ActionFormat, inside_think: bool):
    n = data.draw(st.integers(0, 3), label="actions")
    actions = [data.draw(clean_text(fmt), label="action") for _ in range(n)]
    # observations are the tool's text: any tag but their own close, which the environment never writes inside
    observations = [data.draw(fuzzed_outputs(fmt).filter(lambda s: fmt.observation_close not in s)) for _ in range(n)]
    thoughts = [data.draw(clean_text(fmt), label="thought") for _ in range(n + 1)]
    answer = data.draw(answers(fmt), label="answer")

    text, turn_ends = "", []  # where each rollout turn stops: right after an action's close

    def act(i: int) -> None:
        nonlocal text
        text += f" {fmt.action_open} {actions[i]} {fmt.action_close}"
        turn_ends.append(len(text))
        text += fmt.format_observation(observations[i])

    if inside_think:  # AutoCoA: one think block with the actions inside it
        text += f"{fmt.think_open} {thoughts[0]}"
        for i in range(n):
            act(i)
            text += f" {thoughts[i + 1]}"
        text += f" {fmt.think_close} {fmt.answer_open}{answer}{fmt.answer_close}"
    else:  # Search-R1: think blocks with the actions between them
        for i in range(n):
            text += f"{fmt.think_open} {thoughts[i]} {fmt.think_close}"
            act(i)
            text += " "
        text += f"{fmt.think_open} {thoughts[n]} {fmt.think_close} {fmt.answer_open} {answer} {fmt.answer_close}"

    assert fmt.parse_output(text) == ParsedOutput(actions[-1] if actions else None, answer, [], actions)
    for action, end in zip(actions, turn_ends):  # a turn ends at the action's close: both readers see it
        assert fmt.last_action(text[:end]) == action == fmt.parse_output(text[:end]).action
