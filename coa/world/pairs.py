"""CoT+A contrastive pairs at the oracle's decision points: act when a fact is missing, answer when none is.

A question with hops h_1..h_n has n + 1 decision points in its trajectory. Before hop k the model
lacks h_k's fact: `chosen` is the search action, `rejected` guesses (a wrong fact of the right type,
or a jump to an answer). After the last hop (and at once for no-search questions) nothing is
missing: `chosen` reasons to the answer, `rejected` is a needless search. Every continuation starts
where the oracle's trajectory continues, and a search ends at the action's close tag (where
generation stops for the tool).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from coa.data.cota_pairs import ContrastivePair
from coa.formats.action_format import AUTOCOA, ActionFormat
from coa.world.encyclopedia import SCHEMA, World
from coa.world.questions import Hop, Question

LITERAL_KINDS = ("year", "word")
YEAR_RANGE = (1700, 1999)  # the encyclopedia's years (encyclopedia._literal)


@dataclass(frozen=True)
class DecisionPoint:
    """One place in a trajectory where the model chooses between acting and not.

    Args:
        prefix: the assistant's text so far, after its opening think tag ("" at the first step).
        chosen: the right continuation: a search ending at the close tag, or reasoning to the answer.
        rejected: the wrong one: a guess (`rejected_kind` "guess_fact" / "guess_answer") or a
            "needless_search".
        needs_search: True where a fact is still missing (chosen is the search).
        rejected_kind: how `rejected` goes wrong.
    """

    prefix: str
    chosen: str
    rejected: str
    needs_search: bool
    rejected_kind: str


def value_pools(world: World) -> dict[str, list[str]]:
    """relation -> every value text of that relation's type in the world (sorted, so draws are seeded only).

    Entity-valued relations draw from all names of the entity type; literal ones from the values
    the world uses for that relation (years also from their whole range).
    """
    pools: dict[str, set[str]] = {}
    for entity in world.entities.values():
        for relation, kind in SCHEMA[entity.type].items():
            pool = pools.setdefault(relation, set())
            if kind in LITERAL_KINDS:
                pool.add(entity.value_name(relation, world))
            elif not pool:
                pool.update(world.get(i).name for i in world.by_type[kind])
    return {relation: sorted(values) for relation, values in pools.items()}


def wrong_value(relation: str, value: str, pools: dict[str, list[str]], rng: random.Random) -> str | None:
    """A value of the relation's type other than `value`; None when the world has no other."""
    others = [v for v in pools.get(relation, []) if v != value]
    if not others and value.isdigit():
        others = [str(y) for y in (int(value) - 1, int(value) + 1) if YEAR_RANGE[0] <= y <= YEAR_RANGE[1]]
    return rng.choice(others) if others else None


class PairWriter:
    """Cuts an oracle trajectory at its decision points and writes chosen/rejected continuations.

    Args:
        world: the encyclopedia; wrong guesses are drawn from its values.
        guess_answer_share: where a search is needed, the share of rejected continuations that jump
            to an answer; the rest state a wrong fact without searching.
        action_format: the tags the oracle wrote.
    """

    def __init__(self, world: World, guess_answer_share: float = 0.5, action_format: ActionFormat = AUTOCOA) -> None:
        self.pools = value_pools(world)
        self.guess_answer_share = guess_answer_share
        self.fmt = action_format

    def search(self, hop: Hop) -> str:
        """The oracle's action for a hop, as it appears in its trajectory (leading space, ends at the close tag)."""
        fmt = self.fmt
        return f" I need {hop.entity_name}'s {hop.relation}. {fmt.action_open} {hop.entity_name} {fmt.action_close}"

    def answer(self, answer: str) -> str:
        return f" {self.fmt.think_close} {self.fmt.answer_open} {answer} {self.fmt.answer_close}"

    def decision_points(self, question: Question, trajectory: str) -> list[DecisionPoint]:
        """Every decision point of the trajectory, in order: one per hop, then the answer.

        Args:
            question: the question the oracle answered.
            trajectory: the oracle's text for it (starts with the think tag).
        Raises:
            ValueError: when the trajectory is not the oracle's text for this question.
        """
        fmt = self.fmt
        if not trajectory.startswith(fmt.think_open):
            raise ValueError(f"trajectory for {question.question!r} does not start with {fmt.think_open!r}")
        body = trajectory[len(fmt.think_open):]
        points: list[DecisionPoint] = []
        cursor = 0
        for hop in question.hops:
            chosen = self.search(hop)
            at = body.find(chosen, cursor)
            if at < 0:
                raise ValueError(f"trajectory for {question.question!r} lacks the oracle's action {chosen!r}")
            points.append(DecisionPoint(body[:at], chosen, "", True, ""))
            cursor = at + len(chosen)
        final = (f" {question.reasoning}" if question.reasoning else "") + self.answer(question.answer)
        if not body.endswith(final):
            raise ValueError(f"trajectory for {question.question!r} does not end with {final!r}")
        points.append(DecisionPoint(body[: len(body) - len(final)], final, "", False, ""))
        return points

    def rejected(self, point: DecisionPoint, question: Question, hop_index: int, rng: random.Random) -> DecisionPoint:
        """`point` with its wrong continuation filled in."""
        if not point.needs_search:
            if question.hops:  # search again for a fact already read
                needless = self.search(question.hops[-1])
            else:
                # Measured on the quick preset (seed 0, SFT1&2, 1,200 questions): cutting this side at the open tag
                # lets the model answer these questions (0.035 -> 0.535) but costs the comparisons 0.465 -> 0.015 and
                # needs search 0.871 -> 0.764; cutting every needless search there: 0.940, 0.145 and 0.779.
                needless = f" {self.fmt.action_open} {question.question} {self.fmt.action_close}"
            return DecisionPoint(point.prefix, point.chosen, needless, False, "needless_search")
        hop = question.hops[hop_index]
        guessed_fact = wrong_value(hop.relation, hop.value, self.pools, rng)
        if guessed_fact is None or rng.random() < self.guess_answer_share:
            guess = self._guess_answer(question, rng)
            return DecisionPoint(point.prefix, point.chosen, self.answer(guess), True, "guess_answer")
        # Thinking on as if the fact were known: the oracle's note after a search, with a wrong value.
        text = f" {hop.entity_name}'s {hop.relation} {guessed_fact}."
        return DecisionPoint(point.prefix, point.chosen, text, True, "guess_fact")

    def _guess_answer(self, question: Question, rng: random.Random) -> str:
        """A wrong answer of the right type (for a comparison: the entity that came later)."""
        if question.kind == "comparison":
            return next(h.entity_name for h in question.hops if h.entity_name != question.answer)
        last = question.hops[-1]
        return wrong_value(last.relation, question.answer, self.pools, rng) or question.answer

    def pairs(
        self, pair_id: str, prompt: str, question: Question, trajectory: str, per_question: int, rng: random.Random
    ) -> list[ContrastivePair]:
        """`per_question` decision points drawn without replacement (all when there are fewer), as pairs.

        Args:
            pair_id: the id stem; each pair gets `{pair_id}-{k}` with k its decision point's index.
            prompt: the user message (instruction + question) stored with each pair.
            question, trajectory: as in `decision_points`.
            per_question: how many decision points to keep.
            rng: draws which points and the wrong guesses.
        """
        points = self.decision_points(question, trajectory)
        keep = sorted(rng.sample(range(len(points)), min(per_question, len(points))))
        out = []
        for k in keep:
            point = self.rejected(points[k], question, k, rng)
            out.append(ContrastivePair(
                id=f"{pair_id}-{k}", prompt=prompt, question=question.question, prefix=point.prefix,
                chosen=point.chosen, rejected=point.rejected,
            ))
        return out
