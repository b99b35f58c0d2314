"""Which tokens of a trajectory carry SFT loss: the assistant's own text, optionally minus observations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from transformers import PreTrainedTokenizerBase

from coa.formats.action_format import AUTOCOA, ActionFormat


@dataclass(frozen=True)
class TokenizedExample:
    """One chat as token ids with its loss mask.

    Args:
        input_ids: [T] the whole chat (prompt, then the assistant turn and its end-of-sequence token).
        loss_mask: [T] 1 where the token is a target of the next-token loss, 0 where not; a float weight in (0, 1)
            where the target counts less (stage 3 with `observation_weight`). Ints unless some token is weighted.
    """

    input_ids: list[int]
    loss_mask: list[int] | list[float]


def observation_spans(text: str, fmt: ActionFormat = AUTOCOA) -> list[tuple[int, int]]:
    """Character spans of what the environment appended: `format_observation`'s text, leading space included.

    One left-to-right scan, linear in the text. Inside an observation every tag but its close is the
    tool's text. An observation ends at the last observation close before the policy's next own tag
    (action open, think close or answer open) or the end of the text, so a tool text holding the close
    tag is masked whole. An observation open after a close and before such a tag is tool text too
    (opaque again until a close), except one right at the close (a second observation straight after
    the first), which starts a span of its own. An unclosed observation runs to the end of the text.

    Args:
        text: [N] characters of the assistant's text.
        fmt: the tags.
    """
    scan = _observation_scanner(fmt)
    spans: list[tuple[int, int]] = []
    mode, start, end, pos = _TEXT, 0, 0, 0
    while (m := scan[mode].search(text, pos)) is not None:
        pos = m.end()
        if mode == _TEXT:
            mode, start = _INSIDE, m.start()
        elif mode == _INSIDE or m.group() == fmt.observation_close:
            mode, end = _CLOSED, pos
        elif m.group() in (fmt.action_open, fmt.think_close, fmt.answer_open):
            spans.append((start, end))
            mode = _TEXT
        else:  # an observation open: the tool's text goes on, or a second observation starts right at the close
            if m.start() == end:
                spans.append((start, end))
                start = m.start()
            mode = _INSIDE
    if mode == _INSIDE:
        spans.append((start, len(text)))
    elif mode == _CLOSED:
        spans.append((start, end))
    return spans


_TEXT, _INSIDE, _CLOSED = range(3)


@lru_cache(maxsize=64)
def _observation_scanner(fmt: ActionFormat) -> dict[int, re.Pattern[str]]:
    """Per scan mode, one regex over the tags that mean something there (longest first, so a tag wins over its prefix)."""
    opener = r" ?" + re.escape(fmt.observation_open)
    tags = (fmt.observation_close, fmt.observation_open, fmt.action_open, fmt.think_close, fmt.answer_open)
    after_close = "|".join(
        opener if t == fmt.observation_open else re.escape(t) for t in sorted(tags, key=len, reverse=True)
    )
    return {
        _TEXT: re.compile(opener),
        _INSIDE: re.compile(re.escape(fmt.observation_close)),
        _CLOSED: re.compile(after_close),
    }


def observation_open_spans(text: str, fmt: ActionFormat = AUTOCOA) -> list[tuple[int, int]]:
    """Character spans of each observation's open tag (its leading space included): the part of an observation
    that a simulated environment writes itself (`SimulatedEnvironment` appends it), so a world model need not learn it."""
    return _open_tags(text, observation_spans(text, fmt), fmt)


def _open_tags(text: str, observations: list[tuple[int, int]], fmt: ActionFormat) -> list[tuple[int, int]]:
    """The open tag's span at the start of each of `observations` (spans of `text`, as `observation_spans` gives)."""
    opener = _observation_scanner(fmt)[_TEXT]  # the open tag with its optional leading space, as the scan finds it
    return [(start, opener.match(text, start).end()) for start, _ in observations]


def char_mask_to_tokens(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """1 for each token whose characters lie outside every span, 0 for a token touching one."""
    mask = []
    for start, end in offsets:
        inside = any(start < s_end and end > s_start for s_start, s_end in spans)
        mask.append(0 if inside else 1)
    return mask


def weigh_tokens(mask: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]], weight: float) -> list[float]:
    """`mask` with each target token touching one of `spans` weighted `weight` instead of 1."""
    outside = char_mask_to_tokens(offsets, spans)
    return [float(m) if out else m * weight for m, out in zip(mask, outside)]


def tokenize_chat(
    tokenizer: PreTrainedTokenizerBase,
    prompt_messages: list[dict[str, str]],
    response: str,
    mask_observations: bool,
    fmt: ActionFormat = AUTOCOA,
    mask_observation_open: bool = False,
    observation_weight: float = 1.0,
) -> TokenizedExample:
    """Tokenises prompt + response through the chat template; loss on the response (and its EOS) only.

    The observation's tags are masked with its contents: the environment writes `<search_result>` and
    `</search_result>`, so predicting them is not the policy's job (the policy's last own token is the
    action's close tag, where generation stops). The policy's text after the observation has loss.
    With `mask_observations` False, `mask_observation_open` still masks each observation's open tag: a world
    model (stage 3) then learns the observation's text and its close tag, which is what simulated RL asks of it.
    With `mask_observations` False, an `observation_weight` below 1 weighs the observation's trained tokens by it
    (the loss mask holds floats then): the world model is learned, at less cost to the policy's own text.
    """
    prompt_text = tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(
        prompt_messages + [{"role": "assistant", "content": response}], tokenize=False
    )
    if not full_text.startswith(prompt_text):
        raise ValueError("the chat template renders the prompt differently with and without the answer")
    encoded = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    weighted = not mask_observations and observation_weight != 1.0
    scan = mask_observations or mask_observation_open or weighted
    observations = _shifted(observation_spans(response, fmt), len(prompt_text)) if scan else []  # in full_text
    if mask_observations:
        masked = observations
    elif mask_observation_open:
        masked = _open_tags(full_text, observations, fmt)
    else:
        masked = []
    mask = char_mask_to_tokens(encoded["offset_mapping"], [(0, len(prompt_text))] + masked + _after_turn(
        full_text, len(prompt_text) + len(response), tokenizer.eos_token))
    if weighted:
        mask = weigh_tokens(mask, encoded["offset_mapping"], observations, observation_weight)
    return TokenizedExample(list(encoded["input_ids"]), mask)


def _after_turn(full_text: str, response_end: int, eos: str | None) -> list[tuple[int, int]]:
    """The template's text after the turn's end-of-sequence token (ChatML's newline after `<|im_end|>`): the policy
    stops at that token, so what follows is never its to predict. Nothing where the template writes no such token."""
    at = full_text.find(eos, response_end) if eos else -1
    return [] if at < 0 or at + len(eos) == len(full_text) else [(at + len(eos), len(full_text))]


def _shifted(spans: list[tuple[int, int]], by: int) -> list[tuple[int, int]]:
    return [(start + by, end + by) for start, end in spans]


def generation_prefix(
    tokenizer: PreTrainedTokenizerBase, prompt_messages: list[dict[str, str]], assistant_prefix: str
) -> str:
    """The text a model continues mid-turn: the prompt with the assistant turn opened, then its text so far."""
    prompt_text = tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
    return prompt_text + assistant_prefix


def tokenize_continuation(
    tokenizer: PreTrainedTokenizerBase,
    prompt_messages: list[dict[str, str]],
    assistant_prefix: str,
    continuation: str,
) -> TokenizedExample:
    """Tokenises prompt + assistant prefix + continuation; loss on the continuation's tokens only.

    The turn is left open (no end-of-sequence token): a CoT+A continuation stops mid-thought, at an
    action's close tag or after the answer. A token straddling the prefix/continuation boundary
    counts as prefix.
    """
    prefix = generation_prefix(tokenizer, prompt_messages, assistant_prefix)
    encoded = tokenizer(prefix + continuation, add_special_tokens=False, return_offsets_mapping=True)
    mask = char_mask_to_tokens(encoded["offset_mapping"], [(0, len(prefix))])
    return TokenizedExample(list(encoded["input_ids"]), mask)
