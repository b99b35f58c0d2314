"""Multi-turn rollouts: generate until an action closes, answer the batch's actions together, append, go on."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import PreTrainedTokenizerBase

from coa.rollout.engines.base import Generation, GenerationEngine, SamplingSettings
from coa.rollout.engines.stop import cut_ids_at_text, end_of_sequence_ids, first_stop
from coa.rollout.engines.streams import RowStreams, as_streams
from coa.formats.action_format import AUTOCOA, ActionFormat
from coa.rollout.environments import ActionRequest, Binding, Environment, Observation, RealEnvironment
from coa.tools.base import Tool

BUDGET_MESSAGE = "Reach the limit of search times."  # AutoCoA's text past the search budget


@dataclass
class Rollout:
    """One episode.

    Args:
        prompt_ids: [P] the prompt.
        response_ids: [R] everything after the prompt: the policy's tokens and the observations.
        policy_mask: [R] 1 on tokens the policy sampled; 0 on observation tokens the environment appended and on
            the re-encoded piece of a token a stop string ended inside (`Generation.unsampled`).
        golds: the question's gold answers (for rewards and fidelity statistics).
        actions: the tool arguments the policy issued, in order (past the budget too).
        tool_calls: how many of them the environment answered (those within the budget).
        real_calls / simulated_calls: of those, answered by the real tool / written by the policy.
        tool_errors: real calls that failed (the failure text is the observation).
        observations: the observation texts, in order.
        truncated: True when it ran out of response tokens (or turns) before finishing.
        segment_start: where in `response_ids` the policy's current stretch of text began (after the last
            observation): an action is read from the whole stretch, which may span turns.
        turn_cut: the last turn stopped at `max_turn_tokens` with response budget left: the next turn goes on
            with the same stretch.
    """

    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)
    policy_mask: list[int] = field(default_factory=list)
    golds: tuple[str, ...] = ()
    actions: list[str] = field(default_factory=list)
    tool_calls: int = 0
    real_calls: int = 0
    simulated_calls: int = 0
    tool_errors: int = 0
    observations: list[str] = field(default_factory=list)
    truncated: bool = False
    done: bool = False
    segment_start: int = 0
    turn_cut: bool = False

    def append(self, tokens: list[int], from_policy: bool) -> None:
        self.response_ids += tokens
        self.policy_mask += [int(from_policy)] * len(tokens)
        assert len(self.policy_mask) == len(self.response_ids)


@dataclass(frozen=True)
class RolloutSettings:
    """Limits and sampling of an episode.

    Args:
        max_actions: actions the environment answers; the next one gets the budget message and the
            policy must answer.
        max_turn_tokens: new tokens per generation call; a turn that reaches it goes on in the next call while
            the episode has response tokens left (it does not end the episode).
        max_response_tokens: all response tokens (policy + observations) of an episode.
        temperature: 0 is greedy.
        top_p: nucleus sampling when temperature > 0.
    """

    max_actions: int = 5
    max_turn_tokens: int = 128
    max_response_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0


class RolloutRunner:
    """Runs batches of episodes with one engine and one environment.

    Args:
        engine: generates continuations from token ids.
        environment: answers the actions; a Tool is wrapped in a RealEnvironment.
        tokenizer: encodes observations (alone: the prefix is never re-tokenised) and decodes outputs.
        fmt: the action tags; generation stops on the action's close string, whatever tokens spell it, and on
            the end of sequence or of the turn (`end_of_sequence_ids`).
        settings: episode limits and sampling.
    """

    def __init__(
        self,
        engine: GenerationEngine,
        environment: Environment | Tool,
        tokenizer: PreTrainedTokenizerBase,
        fmt: ActionFormat = AUTOCOA,
        settings: RolloutSettings = RolloutSettings(),
    ) -> None:
        self.engine, self.tokenizer, self.fmt, self.settings = engine, tokenizer, fmt, settings
        self.environment = RealEnvironment(environment) if isinstance(environment, Tool) else environment
        self.stop_token_ids = end_of_sequence_ids(tokenizer, engine.eos_token_ids())
        self.environment.bind(
            Binding(engine, tokenizer, fmt, settings.temperature, settings.top_p, self.stop_token_ids)
        )

    def run(
        self, prompts: list[list[int]], golds: list[list[str]] | None = None,
        generator: torch.Generator | RowStreams | None = None,
    ) -> list[Rollout]:
        """Episodes for `prompts` (a prompt repeated n times gives a group of n, kept in order).

        Args:
            prompts: token ids per episode.
            golds: gold answers per episode (optional; environments may use them for statistics).
            generator: the randomness of sampling and of the environment: RowStreams, one per episode (an
                episode then is the same whichever episodes share the batch), or a generator they are drawn
                from (advanced by each call); None: seed 0.
        """
        rollouts = [Rollout(prompt_ids=list(p), golds=tuple(golds[i]) if golds else ()) for i, p in enumerate(prompts)]
        streams = as_streams(generator, len(rollouts))
        with self.engine.session():
            for _ in range(self.max_turns()):
                active = [i for i, r in enumerate(rollouts) if not r.done]
                # a collective engine (vLLM under tensor parallelism) needs every process in every call: the
                # loop ends only when no process of its group has an episode left
                if not self.engine.any_active(bool(active)):
                    break
                waiting = self._generate_turn([rollouts[i] for i in active], streams.select(active))
                self._observe(waiting)
        for r in rollouts:
            if not r.done:
                r.done, r.truncated = True, True
        return rollouts

    def max_turns(self) -> int:
        """Generation calls an episode may take: one per answered action, the budget message and the answer, plus
        one per `max_turn_tokens` of the response budget (a turn that reaches it goes on in the next call)."""
        s = self.settings
        return s.max_actions + 2 + -(-s.max_response_tokens // max(1, s.max_turn_tokens))

    def text(self, rollout: Rollout) -> str:
        """The response as text without its end-of-sequence/turn token; special tokens are kept, since tags
        added as special tokens (the usual HF recipe) would otherwise vanish."""
        ids = [t for t in rollout.response_ids if t not in self.stop_token_ids]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def decoded(self, rollout: Rollout) -> tuple[str, str]:
        """(prompt, response) as one `tokenizer.decode(prompt + response)` gives them, special tokens and the end of
        sequence included: the text AutoCoA's release scores (its reward manager decodes the sequence whole)."""
        whole = self.tokenizer.decode(rollout.prompt_ids + rollout.response_ids)
        prompt = self.tokenizer.decode(rollout.prompt_ids)
        if whole.startswith(prompt):
            return prompt, whole[len(prompt):]
        return prompt, self.tokenizer.decode(rollout.response_ids)

    def _generate_turn(self, active: list[Rollout], streams: RowStreams) -> list[tuple[Rollout, str, torch.Generator]]:
        """Generates one turn for every active episode (none: the call still happens, for collective engines);
        returns those that stopped on an action, with its argument and the episode's stream.

        Every call asks for `max_turn_tokens` and each episode's turn is then cut to its own token budget, so no
        episode's turn depends on another's budget (nor its draws on which episodes share the call). A turn that
        reached `max_turn_tokens` with budget left goes on in the next call."""
        s = self.settings
        settings = SamplingSettings(
            max_new_tokens=s.max_turn_tokens, temperature=s.temperature, top_p=s.top_p,
            stop_strings=(self.fmt.action_close,), stop_token_ids=self.stop_token_ids,
        )
        outputs = self.engine.generate([r.prompt_ids + r.response_ids for r in active], settings, streams)
        waiting = []
        for row, (r, g) in enumerate(zip(active, outputs)):
            g = cut_to_budget(self.tokenizer, g, max(1, s.max_response_tokens - len(r.response_ids)))
            if r.turn_cut:
                g = self._stop_across_turns(r, g)
            sampled = len(g.token_ids) - g.unsampled
            r.append(g.token_ids[:sampled], from_policy=True)
            r.append(g.token_ids[sampled:], from_policy=False)  # a cut token's re-encoded piece: never sampled
            out_of_budget = len(r.response_ids) >= s.max_response_tokens
            r.turn_cut = g.finish_reason == "length" and not out_of_budget
            if r.turn_cut:
                continue
            action = self._action(r, g)
            if action is None:
                r.done = True
                r.truncated = g.finish_reason == "length"
            elif out_of_budget:
                r.done, r.truncated = True, True
            else:
                waiting.append((r, action, streams.generators[row]))
        return waiting

    def _stop_across_turns(self, r: Rollout, g: Generation) -> Generation:
        """`g` cut where the action's close string ends when it began in the previous (cut) turn, which the engine,
        seeing only this turn's text, could not find; `g` itself otherwise."""
        close = self.fmt.action_close
        before = self.tokenizer.decode(r.response_ids[r.segment_start:], skip_special_tokens=False)
        tail = before[-(len(close) - 1):] if len(close) > 1 else ""
        hit = first_stop(tail + g.text, (close,))
        if hit is None or hit[0] - len(close) >= len(tail):  # none, or wholly in this turn (the engine stopped there)
            return g
        keep = hit[0] - len(tail)
        kept, unsampled = cut_ids_at_text(self.tokenizer, g.token_ids, keep)
        return Generation(kept, g.text[:keep], "stop", close, unsampled)

    def _action(self, r: Rollout, g: Generation) -> str | None:
        """The argument of the action that closed this turn (read from the whole stretch since the last
        observation), "" for a close with no open, or None where the turn did not stop on the close string."""
        if g.finish_reason != "stop":
            return None
        stretch = r.response_ids[r.segment_start:]
        text = g.text if len(stretch) == len(g.token_ids) else self.tokenizer.decode(stretch, skip_special_tokens=False)
        return self.fmt.last_action(text) or ""

    def _observe(self, waiting: list[tuple[Rollout, str, torch.Generator]]) -> None:
        """Sends every pending action of the batch to the environment in one call; past the budget, answers for it."""
        asked: list[Rollout] = []
        requests: list[ActionRequest] = []
        asked_streams: list[torch.Generator] = []
        for r, action, stream in waiting:
            r.actions.append(action)
            if len(r.actions) > self.settings.max_actions:
                self._append(r, Observation(BUDGET_MESSAGE, "budget"))
            else:
                asked.append(r)
                asked_streams.append(stream)
                requests.append(ActionRequest(r.prompt_ids + r.response_ids, action, r.golds))
        # asked even with no request: an environment that generates (the policy simulating the tool) must take part
        # in every turn of a collective engine
        observations = self.environment.respond(requests, RowStreams(asked_streams))
        for r, observation in zip(asked, observations):
            r.tool_calls += 1
            r.real_calls += observation.source == "real"
            r.simulated_calls += observation.source == "simulated"
            r.tool_errors += observation.failed
            self._append(r, observation)

    def _append(self, r: Rollout, observation: Observation) -> None:
        r.observations.append(observation.text)
        ids = observation.token_ids
        if ids is None:
            ids = self.tokenizer.encode(self.fmt.format_observation(observation.text), add_special_tokens=False)
        r.append(ids, from_policy=False)
        r.segment_start = len(r.response_ids)


def cut_to_budget(tokenizer: PreTrainedTokenizerBase, g: Generation, budget: int) -> Generation:
    """`g` cut to its first `budget` tokens (finish reason "length"), or `g` itself where it fits."""
    if len(g.token_ids) <= budget:
        return g
    kept = g.token_ids[:budget]
    unsampled = max(0, g.unsampled - (len(g.token_ids) - budget))
    text = tokenizer.decode(kept, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return Generation(kept, text, "length", None, unsampled)


class UnavailableTool(Tool):
    """The closed-book setting: every call is answered with a refusal, so the model must answer from memory."""

    name = "unavailable"

    def call(self, arguments: list[str]) -> list[str]:
        return ["Search is not available."] * len(arguments)
