"""The tags an agent model writes: thinking, a tool call, the tool's observation, the answer."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ActionFormat:
    """One set of action tags.

    Args:
        think_open: opens the reasoning block.
        think_close: closes it; the answer comes after it.
        action_open: opens a tool call; its argument follows.
        action_close: closes a tool call; generation stops here so the tool can answer.
        observation_open: opens the tool's answer (written by the environment, not the model).
        observation_close: closes the tool's answer.
        answer_open: opens the final answer (`\\boxed{` for AutoCoA).
        answer_close: closes the final answer; braces nest for `\\boxed{`.
    """

    think_open: str = "<think>"
    think_close: str = "</think>"
    action_open: str = "<begin_search>"
    action_close: str = "</end_search>"
    observation_open: str = "<search_result>"
    observation_close: str = "</search_result>"
    answer_open: str = "\\boxed{"
    answer_close: str = "}"

    @property
    def tags(self) -> list[str]:
        """The tags that must stay single tokens in a tokenizer built for this format."""
        return [
            self.think_open, self.think_close, self.action_open, self.action_close,
            self.observation_open, self.observation_close,
        ]

    def format_observation(self, text: str) -> str:
        """Wraps a tool's answer as appended after the action closes; the model continues after the close tag.

        No trailing space: the model writes its own, so a word after the tag tokenises as in the SFT data.
        """
        return f" {self.observation_open} {text} {self.observation_close}"

    def last_action(self, text: str) -> str | None:
        """The argument of the last closed action in `text`, or None if the text ends without one."""
        stripped = text.rstrip()
        if not stripped.endswith(self.action_close):
            return None
        body = stripped[: -len(self.action_close)]
        start = body.rfind(self.action_open)
        if start < 0:
            return None
        return body[start + len(self.action_open):].strip()

    def extract_answer(self, text: str) -> str | None:
        """The content of the last answer span, with nested braces; None when absent or unclosed.

        >>> AUTOCOA.extract_answer("x \\\\boxed{a{b}c} y")
        'a{b}c'
        """
        start = text.rfind(self.answer_open)
        if start < 0:
            return None
        i = start + len(self.answer_open)
        if self.answer_close != "}":
            end = text.find(self.answer_close, i)
            return None if end < 0 else text[i:end].strip()
        depth = 1
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i:j].strip()
        return None

    def count_actions(self, text: str) -> int:
        return len(re.findall(re.escape(self.action_open), text))

    def format_errors(self, text: str) -> list[str]:
        """Names of the ways `text` (one whole model output) breaks the format; empty if none."""
        errors: list[str] = []
        if self.extract_answer(text) is None:
            errors.append("no_answer")
        if text.count(self.action_open) != text.count(self.action_close):
            errors.append("unclosed_action")
        if self.think_close and self.think_close not in text:
            errors.append("unclosed_think")
        elif self.think_close and self.action_open in text.split(self.think_close)[-1]:
            errors.append("action_after_answer")
        return errors


AUTOCOA = ActionFormat()
