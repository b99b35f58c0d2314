"""Loss masks: prompt never has loss; observations (their tags included) have none in stage 2, all in stage 3."""

import dataclasses
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coa.formats.action_format import AUTOCOA, SEARCH_R1, ActionFormat
from coa.masking import char_mask_to_tokens, observation_open_spans, observation_spans, tokenize_chat
from coa.models.tokenizer import train_tokenizer

RESPONSE = (
    "<think> I need Ada's city. <begin_search> Ada </end_search> <search_result> (1) Ada: city Lisbon. "
    "</search_result> Ada's city Lisbon. </think> \\boxed{Lisbon}"
)
PROMPT = [{"role": "user", "content": "Where does Ada live?"}]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([RESPONSE, "Where does Ada live?"] * 4, vocab_size=300)


def test_observation_span_covers_the_leading_space_and_both_tags():
    (start, end), = observation_spans(RESPONSE)
    assert RESPONSE[start:end] == " <search_result> (1) Ada: city Lisbon. </search_result>"


def test_unclosed_observation_runs_to_the_end():
    assert observation_spans("a <search_result> b") == [(1, 19)]


def test_char_mask_to_tokens_masks_any_token_touching_a_span():
    # tokens: [0,3) [3,5) [5,9); span [4,6) touches the 2nd and 3rd
    assert char_mask_to_tokens([(0, 3), (3, 5), (5, 9)], [(4, 6)]) == [1, 0, 0]


def _pieces(tokenizer, example):
    return [(tokenizer.decode([i]), m) for i, m in zip(example.input_ids, example.loss_mask)]


def test_stage2_masks_prompt_and_exactly_the_observation(tokenizer):
    example = tokenize_chat(tokenizer, PROMPT, RESPONSE, mask_observations=True)
    pieces = _pieces(tokenizer, example)
    masked = "".join(p for p, m in pieces if m == 0)
    trained = "".join(p for p, m in pieces if m == 1)
    prompt_text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    assert masked == prompt_text + " <search_result> (1) Ada: city Lisbon. </search_result>"
    # The policy's own text, the action's close tag included, and the end-of-sequence token keep loss.
    assert trained == RESPONSE.replace(" <search_result> (1) Ada: city Lisbon. </search_result>", "") + tokenizer.eos_token
    assert ("</end_search>", 1) in pieces and ("<search_result>", 0) in pieces and ("</search_result>", 0) in pieces


def test_stage3_trains_on_every_response_token(tokenizer):
    example = tokenize_chat(tokenizer, PROMPT, RESPONSE, mask_observations=False)
    pieces = _pieces(tokenizer, example)
    trained = "".join(p for p, m in pieces if m == 1)
    assert trained == RESPONSE + tokenizer.eos_token
    prompt_len = len(tokenizer.apply_chat_template(PROMPT, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"])
    assert example.loss_mask[:prompt_len] == [0] * prompt_len


def test_stage3_variant_masks_only_the_observation_open_tag(tokenizer):
    example = tokenize_chat(tokenizer, PROMPT, RESPONSE, mask_observations=False, mask_observation_open=True)
    trained = "".join(p for p, m in _pieces(tokenizer, example) if m == 1)
    assert trained == RESPONSE.replace(" <search_result>", "") + tokenizer.eos_token


def test_stage3_observation_weight_weighs_exactly_the_observation_tokens(tokenizer):
    plain = tokenize_chat(tokenizer, PROMPT, RESPONSE, mask_observations=False)
    weighted = tokenize_chat(tokenizer, PROMPT, RESPONSE, mask_observations=False, observation_weight=0.25)
    assert weighted.input_ids == plain.input_ids
    pieces = _pieces(tokenizer, weighted)
    assert "".join(p for p, m in pieces if m == 0.25) == " <search_result> (1) Ada: city Lisbon. </search_result>"
    assert "".join(p for p, m in pieces if m == 1.0) == RESPONSE.replace(
        " <search_result> (1) Ada: city Lisbon. </search_result>", "") + tokenizer.eos_token
    assert [m == 0 for m in weighted.loss_mask] == [m == 0 for m in plain.loss_mask]  # the prompt stays out
    assert all(isinstance(m, float) for m in weighted.loss_mask) and all(isinstance(m, int) for m in plain.loss_mask)


def test_observation_weight_leaves_the_masked_open_tag_out(tokenizer):
    example = tokenize_chat(
        tokenizer, PROMPT, RESPONSE, mask_observations=False, mask_observation_open=True, observation_weight=0.5
    )
    pieces = _pieces(tokenizer, example)
    assert "".join(p for p, m in pieces if m == 0.5) == " (1) Ada: city Lisbon. </search_result>"


def test_observation_open_spans_are_each_open_tag_with_its_space():
    text = RESPONSE + " <begin_search> Bo </end_search> <search_result> Bo: city Oslo. </search_result> x"
    assert [text[s:e] for s, e in observation_open_spans(text)] == [" <search_result>", " <search_result>"]


def test_observation_tokens_match_what_a_rollout_appends(tokenizer):
    # The rollout encodes the observation alone and appends the ids: they must equal the SFT tokens.
    example = tokenize_chat(tokenizer, PROMPT, RESPONSE, mask_observations=True)
    appended = tokenizer.encode(AUTOCOA.format_observation("(1) Ada: city Lisbon."), add_special_tokens=False)
    masked_in_response = [i for i, m in zip(example.input_ids, example.loss_mask) if m == 0][-len(appended):]
    assert masked_in_response == appended


# --- linear scan ---------------------------------------------------------------------------------------


def test_a_megabyte_of_tags_is_scanned_in_linear_time():
    o, c = AUTOCOA.observation_open, AUTOCOA.observation_close
    opens = o * (1_000_000 // len(o))
    pairs = (o + c) * (1_000_000 // len(o + c))
    t0 = time.perf_counter()
    assert observation_spans(opens) == [(0, len(opens))]  # one unclosed observation; the rest is its text
    assert observation_spans(pairs) == [(i, i + len(o + c)) for i in range(0, len(pairs), len(o + c))]
    assert time.perf_counter() - t0 < 2.0  # was 6 s for the opens alone, quadratic


# --- tool text holding the close tag (SFT data written elsewhere) --------------------------------------


def _observed(spans, text):
    return [text[s:e] for s, e in spans]


def test_tool_text_holding_the_close_tag_is_masked_whole(tokenizer):
    observation = " <search_result> (1) Ada: <b>city</b> Lisbon. </search_result> (2) Bob. </search_result>"
    response = f"<think> I need Ada's city. <begin_search> Ada </end_search>{observation} Ada's city Lisbon. </think> \\boxed{{Lisbon}}"
    assert _observed(observation_spans(response), response) == [observation]
    pieces = _pieces(tokenizer, tokenize_chat(tokenizer, PROMPT, response, mask_observations=True))
    trained = "".join(p for p, m in pieces if m == 1)
    assert trained == response.replace(observation, "") + tokenizer.eos_token  # the policy's text after it keeps loss


def test_the_observation_ends_at_the_last_close_before_the_policys_next_tag():
    # Search-R1: the policy's next tag is the think close; text after the last close is the policy's
    text = "<search> q </search> <information> a </information> b </information> c <think> d </think> <answer> e </answer>"
    assert _observed(observation_spans(text, SEARCH_R1), text) == [" <information> a </information> b </information>"]
    # an open and close later in the tool's text belong to it; no tag after: the last close ends it
    text = "x <information> a </information> b <information> c </information> d"
    assert _observed(observation_spans(text, SEARCH_R1), text) == [" <information> a </information> b <information> c </information>"]
    # an open in the tool's text after a close, never closed, runs to the end like any unclosed observation
    text = "x <information> a </information> b <information> c"
    assert observation_spans(text, SEARCH_R1) == [(1, len(text))]
    # a close with nothing open is the policy's text
    assert observation_spans("a </information> b", SEARCH_R1) == []


def test_two_observations_in_a_row_give_two_spans():
    first, second = " <search_result> A </search_result>", " <search_result> B </search_result>"
    text = f"<think> <begin_search> a </end_search>{first} <begin_search> b </end_search>{second} so </think> \\boxed{{x}}"
    assert _observed(observation_spans(text), text) == [first, second]
    text = f"<think> <begin_search> a </end_search>{first}{second} so </think> \\boxed{{x}}"
    assert _observed(observation_spans(text), text) == [first, second]


def _covered(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans with touching ones joined."""
    joined: list[tuple[int, int]] = []
    for s, e in spans:
        if joined and joined[-1][1] == s:
            s = joined.pop()[0]
        joined.append((s, e))
    return joined


def _tool_texts(fmt: ActionFormat, tags: tuple[str, ...]) -> st.SearchStrategy[str]:
    fragment = st.one_of(st.sampled_from(tags), st.sampled_from([" ", "<", "/", ">", "{", "}"]), st.text(max_size=4))
    return st.lists(fragment, max_size=30).map("".join)


@settings(max_examples=1000, deadline=None, database=None)
@given(data=st.data(), fmt=st.sampled_from([AUTOCOA, SEARCH_R1]), neutralized=st.booleans())
def test_an_observation_is_masked_whole_whatever_the_tool_wrote(data, fmt: ActionFormat, neutralized: bool):
    # Neutralised, the tool's text may hold any tag; raw, any tag but the policy's (its observation tags included).
    policy = (fmt.action_open, fmt.think_close, fmt.answer_open)
    tags = tuple(t for t in dataclasses.astuple(fmt) if neutralized or t not in policy)
    tool_text = data.draw(_tool_texts(fmt, tags).filter(lambda s: neutralized or not any(t in s for t in policy)))
    observation = fmt.format_observation(fmt.neutralize(tool_text) if neutralized else tool_text)
    head = f"{fmt.think_open} a {fmt.action_open} q {fmt.action_close}"
    text = f"{head}{observation} b {fmt.think_close} {fmt.answer_open}x{fmt.answer_close}"
    spans = observation_spans(text, fmt)
    assert _covered(spans) == [(len(head), len(head) + len(observation))]
    assert len(spans) == 1 or not neutralized


def test_the_template_text_after_the_turns_end_token_is_not_trained(tokenizer):
    # ChatML (SmolLM2, Qwen) writes a newline after <|im_end|>; the policy stops at the end token, so only it is trained
    chatml = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}" + tokenizer.eos_token
              + "\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tokenizer.chat_template = chatml
    try:
        example = tokenize_chat(tokenizer, PROMPT, RESPONSE, mask_observations=False)
    finally:
        tokenizer.chat_template = None
    pieces = _pieces(tokenizer, example)
    assert "".join(p for p, m in pieces if m == 1) == RESPONSE + tokenizer.eos_token
    assert pieces[-1] == ("\n", 0)
