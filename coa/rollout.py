"""Multi-turn rollouts: generate until an action closes, run the batch's tool calls together, append, go on."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import PreTrainedTokenizerBase

from coa.engines.base import GenerationEngine, SamplingSettings
from coa.formats.action_format import AUTOCOA, ActionFormat
from coa.tools.base import Tool

BUDGET_MESSAGE = "Reach the limit of search times."  # AutoCoA's text past the search budget


@dataclass
class Rollout:
    """One episode.

    Args:
        prompt_ids: [P] the prompt.
        response_ids: [R] everything after the prompt: the policy's tokens and the observations.
        policy_mask: [R] 1 on tokens the policy generated, 0 on observation tokens the environment appended.
        actions: the tool arguments the policy issued, in order (past the budget too).
        tool_calls: how many of them the tool answered (those within the budget).
        observations: the texts the tool returned, in order.
        truncated: True when it ran out of turns or tokens before finishing.
    """

    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)
    policy_mask: list[int] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    tool_calls: int = 0
    observations: list[str] = field(default_factory=list)
    truncated: bool = False
    done: bool = False

    def append(self, tokens: list[int], from_policy: bool) -> None:
        self.response_ids += tokens
        self.policy_mask += [int(from_policy)] * len(tokens)


@dataclass(frozen=True)
class RolloutSettings:
    """Limits of an episode.

    Args:
        max_actions: tool calls allowed; the next one gets the budget message and the policy must answer.
        max_turn_tokens: new tokens per generation call.
        max_response_tokens: all response tokens (policy + observations) of an episode.
        temperature: 0 is greedy.
        seed: seeds sampling.
    """

    max_actions: int = 5
    max_turn_tokens: int = 128
    max_response_tokens: int = 1024
    temperature: float = 0.0
    seed: int = 0


class RolloutRunner:
    """Runs batches of episodes with one engine and one tool.

    Args:
        engine: generates continuations from token ids.
        tool: answers the actions (a list of arguments in, observation texts out).
        tokenizer: encodes observations (alone: the prefix is never re-tokenised) and decodes outputs.
        fmt: the action tags.
        settings: episode limits.
    """

    def __init__(
        self,
        engine: GenerationEngine,
        tool: Tool,
        tokenizer: PreTrainedTokenizerBase,
        fmt: ActionFormat = AUTOCOA,
        settings: RolloutSettings = RolloutSettings(),
    ) -> None:
        self.engine, self.tool, self.tokenizer, self.fmt, self.settings = engine, tool, tokenizer, fmt, settings
        action_close = tokenizer.convert_tokens_to_ids(fmt.action_close)
        if action_close is None or action_close == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no single token for {fmt.action_close!r}; add the action tags to it")
        self.stop_ids = (action_close, tokenizer.eos_token_id)

    def run(self, prompts: list[list[int]]) -> list[Rollout]:
        rollouts = [Rollout(prompt_ids=list(p)) for p in prompts]
        for turn in range(self.settings.max_actions + 2):
            active = [r for r in rollouts if not r.done]
            if not active:
                break
            self._generate_turn(active, turn)
            self._observe([r for r in active if not r.done])
        for r in rollouts:
            if not r.done:
                r.done, r.truncated = True, True
        return rollouts

    def text(self, rollout: Rollout) -> str:
        return self.tokenizer.decode(rollout.response_ids, skip_special_tokens=True)

    def _generate_turn(self, active: list[Rollout], turn: int) -> None:
        s = self.settings
        budget = [s.max_response_tokens - len(r.response_ids) for r in active]
        settings = SamplingSettings(
            max_new_tokens=max(1, min(s.max_turn_tokens, min(budget))),
            temperature=s.temperature, stop_token_ids=self.stop_ids, seed=s.seed + turn,
        )
        outputs = self.engine.generate([r.prompt_ids + r.response_ids for r in active], settings)
        for r, tokens in zip(active, outputs):
            r.append(tokens, from_policy=True)
            ended_on_action = bool(tokens) and tokens[-1] == self.stop_ids[0]
            if not ended_on_action:
                r.done = True
                r.truncated = not tokens or tokens[-1] != self.tokenizer.eos_token_id
            elif len(r.response_ids) >= s.max_response_tokens:
                r.done, r.truncated = True, True

    def _observe(self, waiting: list[Rollout]) -> None:
        """Runs every pending action of the batch in one tool call; past the budget, answers for the tool."""
        calls, arguments = [], []
        for r in waiting:
            argument = self.fmt.last_action(self.text(r)) or ""
            r.actions.append(argument)
            if len(r.actions) > self.settings.max_actions:
                self._append_observation(r, BUDGET_MESSAGE)
            else:
                r.tool_calls += 1
                calls.append(r)
                arguments.append(argument)
        for r, observation in zip(calls, self._call_tool(arguments)):
            self._append_observation(r, observation)

    def _call_tool(self, arguments: list[str]) -> list[str]:
        if not arguments:
            return []
        try:
            observations = self.tool.call(arguments)
        except Exception as e:  # a failing tool is an observation, not a crashed run
            return [f"Tool {self.tool.name} failed: {type(e).__name__}: {e}"] * len(arguments)
        if len(observations) != len(arguments):
            return [f"Tool {self.tool.name} failed: returned {len(observations)} results for {len(arguments)} calls"] * len(arguments)
        return observations

    def _append_observation(self, r: Rollout, observation: str) -> None:
        r.observations.append(observation)
        ids = self.tokenizer.encode(self.fmt.format_observation(observation), add_special_tokens=False)
        r.append(ids, from_policy=False)


class UnavailableTool(Tool):
    """The closed-book setting: every call is answered with a refusal, so the model must answer from memory."""

    name = "unavailable"

    def call(self, arguments: list[str]) -> list[str]:
        return ["Search is not available."] * len(arguments)
