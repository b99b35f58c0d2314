"""The tags an agent model writes (thinking, a tool call, the tool's observation, the answer) and a total parser."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from itertools import chain

# Every error `parse_output` can report, in the order it reports them.
FORMAT_ERRORS: dict[str, str] = {
    "no_answer": "no closed answer span (or the last one is unclosed)",
    "unclosed_answer": "the text ends inside an answer span",
    "unclosed_action": "an action opened and not closed before the text ended or another block began",
    "unclosed_think": "thinking never closed, or the text ends inside a thinking block",
    "unclosed_observation": "the text ends inside an observation",
    "action_after_answer": "an action opens after an answer span closed",
    "nested_action": "an action opens inside an open action (the inner one is kept)",
    "empty_action": "a closed action with an empty argument",
    "stray_close": "an action or observation close tag with nothing open",
}


@dataclass(frozen=True)
class ActionFormat:
    """One set of action tags; the defaults are AutoCoA's. A config sets a built-in name or these fields.

    Args:
        think_open: opens the reasoning block.
        think_close: closes it; the answer comes after it.
        action_open: opens a tool call; its argument follows.
        action_close: closes a tool call; generation stops here so the tool can answer.
        observation_open: opens the tool's answer (written by the environment, not the model).
        observation_close: closes the tool's answer.
        answer_open: opens the final answer (`\\boxed{` for AutoCoA).
        answer_close: closes the final answer; braces nest when it is `}`.
    """

    think_open: str = "<think>"
    think_close: str = "</think>"
    action_open: str = "<begin_search>"
    action_close: str = "</end_search>"
    observation_open: str = "<search_result>"
    observation_close: str = "</search_result>"
    answer_open: str = "\\boxed{"
    answer_close: str = "}"

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for f in fields(self):
            tag = getattr(self, f.name)
            if not isinstance(tag, str):
                raise TypeError(f"ActionFormat.{f.name}={tag!r} must be a string tag")
            if not tag.strip():
                raise ValueError(f"ActionFormat.{f.name}={tag!r} is empty; set a non-empty tag such as '<{f.name}>'")
            if tag in seen:
                raise ValueError(
                    f"ActionFormat.{f.name}={tag!r} repeats ActionFormat.{seen[tag]}; every tag must be distinct"
                )
            seen[tag] = f.name

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

    def neutralize(self, text: str) -> str:
        """A tool's text with every tag of this format cut (`</think>` -> `< /think>`), safe to append inside an observation.

        A separator goes after the first character of every occurrence of a tag, overlapping ones included:
        a space, or U+200B (zero-width space) when a tag holds a space. No tag holds the separator, so a tag
        in the result would lie within one stretch of the original text between two cuts, where every tag was
        cut: the result holds none (no parser or mask can see one), and a second call changes nothing.
        One-character tags (AutoCoA's `}` answer close) cannot be cut and stay as they are.

        Args:
            text: the tool's answer.

        >>> SEARCH_R1.neutralize("a </information> <<think>think>")
        'a < /information> << think>think>'
        """
        tags = {tag for tag in (getattr(self, f.name) for f in fields(self)) if len(tag) > 1}
        if not tags:
            return text
        candidates = chain(" \u200b", map(chr, range(0xE000, 0xF900)))
        separator = next(c for c in candidates if all(c not in tag for tag in tags))
        cuts = [m.start() + 1 for m in re.finditer("(?=" + "|".join(map(re.escape, tags)) + ")", text)]
        return separator.join(text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)]))

    def last_action(self, text: str) -> str | None:
        """The argument of the last closed action in `text`, or None if the text ends without one.

        A close tag with no open action since the previous close (a stray close) is no action: the text
        before it is an earlier action's observation, not a query.

        >>> AUTOCOA.last_action("<begin_search> a </end_search> seen </end_search>") is None
        True
        """
        stripped = text.rstrip()
        if not stripped.endswith(self.action_close):
            return None
        body = stripped[: -len(self.action_close)]
        start = body.rfind(self.action_open)
        if start < 0 or self.action_close in body[start:]:
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

    def parse_output(self, text: str) -> ParsedOutput:
        """Reads one whole model output (observations included); total: any string gives a result.

        One left-to-right scan. Observations are opaque (tags inside them are the tool's text, as in
        `coa.masking`). A think close with no open is fine (the prompt may open thinking). An action
        interrupted by another block's tag is dropped as unclosed; an answer ends only at its close
        (braces nest for `}`), and an answer open inside an answer restarts it, so the answer is the
        last span, as in `extract_answer`. `action_after_answer` means after an
        answer span, so Search-R1's actions between think blocks are fine.

        >>> SEARCH_R1.parse_output("<think> a </think> <search> q </search> <answer> x </answer>")
        ParsedOutput(action='q', answer='x', errors=[], actions=['q'])
        """
        scan = _scanner(self)
        errors: set[str] = set()
        actions: list[str] = []
        answer: str | None = None
        answered = in_think = think_closed = False
        mode, start, depth, pos = _TEXT, 0, 0, 0
        while (m := scan[mode].search(text, pos)) is not None:
            tag, pos = m.group(), m.end()
            if mode == _TEXT:
                if tag == self.think_open:
                    in_think = True
                elif tag == self.think_close:
                    in_think, think_closed = False, True
                elif tag == self.action_open:
                    if answered:
                        errors.add("action_after_answer")
                    mode, start = _ACTION, pos
                elif tag == self.observation_open:
                    mode = _OBSERVATION
                elif tag == self.answer_open:
                    mode, start, depth = _ANSWER, pos, 1
                else:  # an action or observation close with nothing open
                    errors.add("stray_close")
            elif mode == _ACTION:
                if tag == self.action_close:
                    actions.append(text[start:m.start()].strip())
                    if not actions[-1]:
                        errors.add("empty_action")
                    mode = _TEXT
                elif tag == self.action_open:
                    errors.add("nested_action")
                    start = pos
                else:  # another block begins: the action was never closed; read the tag again as text
                    errors.add("unclosed_action")
                    mode, pos = _TEXT, m.start()
            elif mode == _OBSERVATION:  # only its close is searched for
                mode = _TEXT
            elif tag == self.answer_open:
                start, depth = pos, 1
            else:
                depth += 1 if tag == "{" else -1
                if depth == 0 or self.answer_close != "}":
                    answer, answered, mode = text[start:m.start()].strip(), True, _TEXT
        if mode == _ANSWER:
            errors.add("unclosed_answer")
            answer = None  # the last answer span is unreadable, as for `extract_answer`
        elif mode == _ACTION:
            errors.add("unclosed_action")
        elif mode == _OBSERVATION:
            errors.add("unclosed_observation")
        if in_think or not think_closed:
            errors.add("unclosed_think")
        if answer is None:
            errors.add("no_answer")
        return ParsedOutput(
            action=actions[-1] if actions else None,
            answer=answer,
            errors=[e for e in FORMAT_ERRORS if e in errors],
            actions=actions,
        )


@dataclass(frozen=True)
class ParsedOutput:
    """What one model output says, by `ActionFormat.parse_output`.

    Args:
        action: the argument of the last closed action (stripped), or None if none closed.
        answer: the content of the last answer span (stripped), or None if absent or unclosed.
        errors: names from FORMAT_ERRORS, in that order; empty for a well-formed output.
        actions: the arguments of all closed actions, in order.
    """

    action: str | None
    answer: str | None
    errors: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


_TEXT, _ACTION, _OBSERVATION, _ANSWER = range(4)


@lru_cache(maxsize=64)
def _scanner(fmt: ActionFormat) -> dict[int, re.Pattern[str]]:
    """Per scan mode, one regex over the tags that mean something there (longest first, so a tag wins over its prefix)."""

    def alternation(*tags: str) -> re.Pattern[str]:
        return re.compile("|".join(re.escape(t) for t in sorted(set(tags), key=len, reverse=True)))

    structural = (fmt.think_open, fmt.think_close, fmt.observation_open, fmt.answer_open)
    braces = ("{",) if fmt.answer_close == "}" else ()
    return {
        _TEXT: alternation(*structural, fmt.action_open, fmt.action_close, fmt.observation_close),
        _ACTION: alternation(*structural, fmt.action_open, fmt.action_close),
        _OBSERVATION: alternation(fmt.observation_close),
        _ANSWER: alternation(fmt.answer_open, fmt.answer_close, *braces),
    }


AUTOCOA = ActionFormat()
SEARCH_R1 = ActionFormat(
    think_open="<think>", think_close="</think>",
    action_open="<search>", action_close="</search>",
    observation_open="<information>", observation_close="</information>",
    answer_open="<answer>", answer_close="</answer>",
)
ACTION_FORMATS: dict[str, ActionFormat] = {"autocoa": AUTOCOA, "search_r1": SEARCH_R1}


def action_format(spec: str | ActionFormat | Mapping[str, str]) -> ActionFormat:
    """The format a config names: a built-in name, an ActionFormat, or a mapping of tags (unset tags keep AutoCoA's).

    >>> action_format("search_r1").action_open
    '<search>'
    """
    if isinstance(spec, ActionFormat):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower().replace("-", "_")
        if key not in ACTION_FORMATS:
            raise ValueError(
                f"action format {spec!r} is not a built-in ({', '.join(ACTION_FORMATS)}); "
                "name one of them or set the tags (think_open, action_open, ...) as a mapping"
            )
        return ACTION_FORMATS[key]
    if isinstance(spec, Mapping):
        known = [f.name for f in fields(ActionFormat)]
        unknown = sorted(str(k) for k in spec if k not in known)
        if unknown:
            raise ValueError(f"action format: unknown field(s) {', '.join(unknown)}; expected some of {', '.join(known)}")
        return ActionFormat(**spec)
    raise TypeError(f"action format must be a name, an ActionFormat or a mapping of tags, got {type(spec).__name__}")
