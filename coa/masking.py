"""Which tokens of a trajectory carry SFT loss: the assistant's own text, optionally minus observations."""

from __future__ import annotations

import re
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from coa.formats.action_format import AUTOCOA, ActionFormat


@dataclass(frozen=True)
class TokenizedExample:
    """One chat as token ids with its loss mask.

    Args:
        input_ids: [T] the whole chat (prompt, then the assistant turn and its end-of-sequence token).
        loss_mask: [T] 1 where the token is a target of the next-token loss.
    """

    input_ids: list[int]
    loss_mask: list[int]


def observation_spans(text: str, fmt: ActionFormat = AUTOCOA) -> list[tuple[int, int]]:
    """Character spans of what the environment appended: `format_observation`'s text, leading space included.

    An unclosed observation runs to the end of the text.
    """
    opener = re.compile(r" ?" + re.escape(fmt.observation_open))
    spans = []
    for m in opener.finditer(text):
        close = text.find(fmt.observation_close, m.end())
        end = len(text) if close < 0 else close + len(fmt.observation_close)
        if spans and m.start() < spans[-1][1]:
            continue  # an opener inside an observation belongs to it
        spans.append((m.start(), end))
    return spans


def char_mask_to_tokens(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """1 for each token whose characters lie outside every span, 0 for a token touching one."""
    mask = []
    for start, end in offsets:
        inside = any(start < s_end and end > s_start for s_start, s_end in spans)
        mask.append(0 if inside else 1)
    return mask


def tokenize_chat(
    tokenizer: PreTrainedTokenizerBase,
    prompt_messages: list[dict[str, str]],
    response: str,
    mask_observations: bool,
    fmt: ActionFormat = AUTOCOA,
) -> TokenizedExample:
    """Tokenises prompt + response through the chat template; loss on the response (and its EOS) only.

    The observation's tags are masked with its contents: the environment writes `<search_result>` and
    `</search_result>`, so predicting them is not the policy's job (the policy's last own token is the
    action's close tag, where generation stops). The policy's text after the observation has loss.
    """
    prompt_text = tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(
        prompt_messages + [{"role": "assistant", "content": response}], tokenize=False
    )
    if not full_text.startswith(prompt_text):
        raise ValueError("the chat template renders the prompt differently with and without the answer")
    encoded = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    spans = [(0, len(prompt_text))]
    if mask_observations:
        spans += [(len(prompt_text) + s, len(prompt_text) + e) for s, e in observation_spans(response, fmt)]
    mask = char_mask_to_tokens(encoded["offset_mapping"], spans)
    return TokenizedExample(list(encoded["input_ids"]), mask)


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
