"""What answers an action: the real tool, the policy itself (a simulated tool), or a mix of both.

An environment gets the batch's pending actions together and returns one `Observation` each. The
rollout appends it after the action's close tag with no loss (policy mask 0). A real observation is
text (the tool's answer with the format's tags neutralised, so it can never close itself early); a
simulated one is the token ids the policy wrote after the observation-open tag.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from transformers import PreTrainedTokenizerBase

from coa.rollout.engines.base import GenerationEngine, SamplingSettings
from coa.rollout.engines.stop import end_of_sequence_ids
from coa.rollout.engines.streams import RowStreams, as_streams
from coa.formats.action_format import AUTOCOA, ActionFormat
from coa.rewards.em import f1_score, normalize_answer
from coa.tools.base import Tool
from coa.tools.registry import tool_from_config

Source = Literal["real", "simulated", "budget"]


@dataclass(frozen=True)
class ActionRequest:
    """One pending action.

    Args:
        context_ids: [P + R] the prompt and the response so far, ending with the action's close tag.
        query: the action's argument.
        golds: the question's gold answers (for fidelity statistics), if known.
    """

    context_ids: list[int]
    query: str
    golds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observation:
    """The environment's answer to one action.

    Args:
        text: the observation's content (without tags).
        source: "real" (a tool answered), "simulated" (the policy wrote it) or "budget" (past the limit).
        token_ids: the ids to append, tags included, when the environment wrote tokens itself; None means
            the rollout encodes `fmt.format_observation(text)`.
        failed: the tool failed and `text` says how.
    """

    text: str
    source: Source
    token_ids: list[int] | None = None
    failed: bool = False


@dataclass(frozen=True)
class Binding:
    """What an environment needs from the rollout that drives it."""

    engine: GenerationEngine
    tokenizer: PreTrainedTokenizerBase
    fmt: ActionFormat
    temperature: float
    top_p: float = 1.0
    stop_token_ids: tuple[int, ...] = ()


class Environment(ABC):
    """Maps a batch of actions to observations; counts what it did in `metrics()` (`env/...`)."""

    def __init__(self) -> None:
        self.binding: Binding | None = None
        self.counts: dict[str, float] = {}

    def bind(self, binding: Binding) -> None:
        """Called once by the rollout runner before the first `respond`."""
        self.binding = binding

    def set_step(self, step: int) -> None:
        """The optimizer step about to be taken (for schedules); most environments ignore it."""

    @abstractmethod
    def respond(self, requests: list[ActionRequest], streams: RowStreams | None = None) -> list[Observation]:
        """One observation per request, in order; never raises for a tool's failure.

        `streams` holds each request's episode's random stream: an environment that draws (a simulated
        observation, a real-or-simulated choice) draws from the request's own, so an episode's observations do
        not depend on the episodes beside it. None: streams from seed 0.

        The rollout asks on every turn, with an empty list too: an environment that generates must then still
        call its engine (a collective call under tensor parallelism, `GenerationEngine.any_active`).
        """

    def count(self, key: str, value: float = 1.0) -> None:
        self.counts[key] = self.counts.get(key, 0.0) + value

    def pop_counts(self) -> dict[str, float]:
        """What was counted since the last call (`real_calls`, `simulated_calls`, `tool_errors`, ...)."""
        out, self.counts = self.counts, {}
        return out

    def metrics(self, counts: dict[str, float]) -> dict[str, float]:
        """`env/...` metrics from counts (one process's, or summed over a DDP run's processes)."""
        return {f"env/{k}": v for k, v in counts.items()}

    def pop_metrics(self) -> dict[str, float]:
        """The metrics of what was counted since the last call."""
        return self.metrics(self.pop_counts())


class RealEnvironment(Environment):
    """The real tool answers every action, the whole batch in one call.

    Args:
        tool: a Tool, a registered name, a class path or `{class_path, init_args}`.
    """

    def __init__(self, tool: str | dict) -> None:  # a Tool instance works too (not in the hint: YAML gives specs)
        super().__init__()
        self.tool = tool if isinstance(tool, Tool) else tool_from_config(tool)

    def respond(self, requests: list[ActionRequest], streams: RowStreams | None = None) -> list[Observation]:
        if not requests:
            return []
        texts, failed = call_tool(self.tool, [r.query for r in requests])
        self.count("real_calls", len(requests))
        self.count("tool_errors", sum(failed))
        fmt = self.binding.fmt if self.binding else AUTOCOA
        return [Observation(fmt.neutralize(t), "real", failed=f) for t, f in zip(texts, failed)]


def call_tool(tool: Tool, arguments: list[str]) -> tuple[list[str], list[bool]]:
    """The tool's answers and which of them are failures; an exception or a wrong count fails the batch."""
    if not arguments:
        return [], []
    errors_before = _tool_errors(tool)
    try:
        texts = tool.call(arguments)
    except Exception as e:  # a failing tool is an observation, not a crashed run
        return [f"Tool {tool.name} failed: {type(e).__name__}: {e}"] * len(arguments), [True] * len(arguments)
    if len(texts) != len(arguments):
        message = f"Tool {tool.name} failed: returned {len(texts)} results for {len(arguments)} calls"
        return [message] * len(arguments), [True] * len(arguments)
    new_errors = _tool_errors(tool) - errors_before  # tools that turn their own failures into text count them
    failed = [t.startswith(("Retrieval failed", f"Tool {tool.name} failed")) for t in texts]
    if new_errors and not any(failed):
        failed = [True] * min(new_errors, len(texts)) + [False] * max(0, len(texts) - new_errors)
    return list(texts), failed


def _tool_errors(tool: Tool) -> int:
    metrics = getattr(tool, "metrics", None)
    return int(metrics().get("tool/errors", 0)) if callable(metrics) else 0


class SimulatedEnvironment(Environment):
    """The policy writes the observation itself (the "internal world model"); no tool is called.

    After the action's close tag the environment appends the observation-open tag and lets the policy
    continue until the observation-close tag or `max_observation_tokens`; those tokens get no loss.

    Args:
        max_observation_tokens: cap on a simulated observation (the close tag is appended when hit).
        fidelity_tool: a real tool asked about a sampled share of the calls, only to measure how close
            the simulation is (`env/sim_fidelity`); the policy never sees its answers.
        fidelity_share: share of simulated calls checked against `fidelity_tool`.
    """

    def __init__(
        self, max_observation_tokens: int = 96, fidelity_tool: str | dict | None = None, fidelity_share: float = 0.0
    ) -> None:
        super().__init__()
        if not 0.0 <= fidelity_share <= 1.0:
            raise ValueError(f"SimulatedEnvironment.fidelity_share={fidelity_share} must be in [0, 1]")
        if fidelity_share > 0 and fidelity_tool is None:
            raise ValueError("SimulatedEnvironment.fidelity_share > 0 needs fidelity_tool (the real tool to compare with)")
        self.max_observation_tokens = max_observation_tokens
        self.fidelity_tool = fidelity_tool if fidelity_tool is None or isinstance(fidelity_tool, Tool) else tool_from_config(fidelity_tool)
        self.fidelity_share = fidelity_share

    def respond(self, requests: list[ActionRequest], streams: RowStreams | None = None) -> list[Observation]:
        streams = as_streams(streams, len(requests))
        b = self._bound()
        opener = b.tokenizer.encode(" " + b.fmt.observation_open, add_special_tokens=False)
        closer = b.tokenizer.encode(" " + b.fmt.observation_close, add_special_tokens=False)
        settings = SamplingSettings(
            max_new_tokens=self.max_observation_tokens, temperature=b.temperature, top_p=b.top_p,
            stop_strings=(b.fmt.observation_close,), stop_token_ids=b.stop_token_ids or end_of_sequence_ids(b.tokenizer),
        )
        # called with no request too: under tensor parallelism every process takes part in every generate call
        generations = b.engine.generate([r.context_ids + opener for r in requests], settings, streams)
        if not requests:
            return []
        observations = []
        for g in generations:
            if g.finish_reason == "stop":
                ids, text = opener + g.token_ids, g.text[: -len(b.fmt.observation_close)]
            else:  # capped or ended the sequence: close the observation for it
                body = g.token_ids[:-1] if g.finish_reason == "eos" else g.token_ids
                ids, text = opener + body + closer, b.tokenizer.decode(body, skip_special_tokens=True)
            observations.append(Observation(text.strip(), "simulated", token_ids=ids))
        self.count("simulated_calls", len(requests))
        self._measure_fidelity(requests, observations, streams)
        return observations

    def _measure_fidelity(self, requests: list[ActionRequest], observations: list[Observation], streams: RowStreams) -> None:
        if self.fidelity_tool is None or self.fidelity_share <= 0:
            return
        draws = streams.uniforms(1)[:, 0]
        chosen = [i for i in range(len(requests)) if draws[i] < self.fidelity_share]
        if not chosen:
            return
        real, failed = call_tool(self.fidelity_tool, [requests[i].query for i in chosen])
        self.count("fidelity_probes", len(chosen))
        for i, text, bad in zip(chosen, real, failed):
            if bad:
                self.count("fidelity_tool_errors")
                continue
            self.count("sim_fidelity_sum", f1_score(observations[i].text, [text]))
            self.count("sim_fidelity_n")
            if requests[i].golds:
                self.count("sim_gold_hits", float(gold_in(observations[i].text, requests[i].golds)))
                self.count("real_gold_hits", float(gold_in(text, requests[i].golds)))
                self.count("gold_probes")

    def metrics(self, counts: dict[str, float]) -> dict[str, float]:
        """Adds `env/sim_fidelity` (mean token F1, simulated vs real) and gold-answer hit rates of both."""
        out = super().metrics(counts)
        n = out.pop("env/sim_fidelity_n", 0.0)
        total = out.pop("env/sim_fidelity_sum", 0.0)
        if n:
            out["env/sim_fidelity"] = total / n
        probes = out.pop("env/gold_probes", 0.0)
        sim_hits, real_hits = out.pop("env/sim_gold_hits", 0.0), out.pop("env/real_gold_hits", 0.0)
        if probes:
            out["env/sim_gold_in_observation"] = sim_hits / probes
            out["env/real_gold_in_observation"] = real_hits / probes
        return out

    def _bound(self) -> Binding:
        if self.binding is None:
            raise RuntimeError("SimulatedEnvironment is not bound to an engine; a RolloutRunner binds it")
        return self.binding


def gold_in(text: str, golds: tuple[str, ...] | list[str]) -> bool:
    """Whether a normalised gold answer appears in the normalised text (as words)."""
    padded = f" {normalize_answer(text)} "
    return any(f" {normalize_answer(g)} " in padded for g in golds if normalize_answer(g))


class MixedEnvironment(Environment):
    """Simulated or real per call: by a step schedule, or with a fixed probability of a real call.

    The paper's schedule (80 simulated steps, then 16 real) is `real_from_step: 80`.

    Args:
        real: answers the real calls.
        simulated: answers the others.
        real_from_step: from this optimizer step on, every call is real (None: no schedule).
        real_probability: without a schedule, each call is real with this probability.
    """

    def __init__(
        self, real: RealEnvironment, simulated: SimulatedEnvironment,
        real_from_step: int | None = None, real_probability: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= real_probability <= 1.0:
            raise ValueError(f"MixedEnvironment.real_probability={real_probability} must be in [0, 1]")
        self.real, self.simulated = real, simulated
        self.real_from_step, self.real_probability = real_from_step, real_probability
        self.step = 0

    def bind(self, binding: Binding) -> None:
        super().bind(binding)
        self.real.bind(binding)
        self.simulated.bind(binding)

    def set_step(self, step: int) -> None:
        self.step = step

    def respond(self, requests: list[ActionRequest], streams: RowStreams | None = None) -> list[Observation]:
        streams = as_streams(streams, len(requests))
        if self.real_from_step is not None:
            is_real = [self.step >= self.real_from_step] * len(requests)
        else:
            is_real = (streams.uniforms(1)[:, 0] < self.real_probability).tolist()
        real_idx = [i for i, r in enumerate(is_real) if r]
        sim_idx = [i for i, r in enumerate(is_real) if not r]
        out: list[Observation | None] = [None] * len(requests)
        for idx, env in ((real_idx, self.real), (sim_idx, self.simulated)):  # both asked, even with none (collective)
            for i, obs in zip(idx, env.respond([requests[i] for i in idx], streams.select(idx))):
                out[i] = obs
        return out  # type: ignore[return-value]

    def pop_counts(self) -> dict[str, float]:
        """Its own counts and those of both environments it mixes, by name (`simulated/...`, `real/...`)."""
        parts = {"real/": self.real.pop_counts(), "simulated/": self.simulated.pop_counts(), "": super().pop_counts()}
        return {prefix + k: v for prefix, counts in parts.items() for k, v in counts.items()}

    def metrics(self, counts: dict[str, float]) -> dict[str, float]:
        def part(prefix: str) -> dict[str, float]:
            return {k[len(prefix):]: v for k, v in counts.items() if k.startswith(prefix)}

        own = {k: v for k, v in counts.items() if not k.startswith(("real/", "simulated/"))}
        return {**self.real.metrics(part("real/")), **self.simulated.metrics(part("simulated/")), **super().metrics(own)}
