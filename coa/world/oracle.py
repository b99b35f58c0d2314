"""The expert: writes AutoCoA trajectories for a question, searching the real corpus as it goes."""

from __future__ import annotations

from functools import lru_cache

from coa.formats.action_format import AUTOCOA, ActionFormat
from coa.tools.bm25 import BM25Search, format_passages
from coa.world.questions import Question


class Oracle:
    """Writes the think -> search -> observation -> ... -> answer text an expert would.

    Args:
        search: the BM25 tool whose real results fill the observations.
        action_format: the tags to write.
    """

    def __init__(self, search: BM25Search, action_format: ActionFormat = AUTOCOA) -> None:
        self.search = search
        self.fmt = action_format
        self._observe = lru_cache(maxsize=None)(self._search_uncached)

    def _search_uncached(self, query: str) -> str:
        return format_passages(self.search.search(query)) or "No results."

    def trajectory(self, question: Question) -> str | None:
        """The assistant text, or None when a needed fact is not in the search results."""
        fmt = self.fmt
        parts = [fmt.think_open]
        for hop in question.hops:
            observation = self._observe(hop.entity_name)
            if f"{hop.entity_name}: " not in observation or f"{hop.relation} {hop.value}" not in observation:
                return None
            parts.append(
                f" I need {hop.entity_name}'s {hop.relation}. {fmt.action_open} {hop.entity_name} {fmt.action_close}"
                + fmt.format_observation(fmt.neutralize(observation))
                # Terse notes, relation right before value as in the passage: the value is then one
                # induction step away (copy what followed the same word in the observation).
                + f" {hop.entity_name}'s {hop.relation} {hop.value}."
            )
        if question.reasoning:
            parts.append(f" {question.reasoning}")
        # Spaces inside the answer span: the answer then tokenises exactly as where the model read it.
        parts.append(f" {fmt.think_close} {fmt.answer_open} {question.answer} {fmt.answer_close}")
        return "".join(parts)
