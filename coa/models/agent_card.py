"""How a model was trained to act, written beside its weights (`coa_agent.json`) and read back by eval and rollouts.

A model trained with the short instruction and evaluated with AutoCoA's long one scores far lower
(EM 0.567 vs 0.200 on the same quickstart model): the prompt and the tags are part of the model.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from coa.formats.action_format import AUTOCOA, ActionFormat

CARD_FILE = "coa_agent.json"
DEFAULT_PROMPT = "autocoa"


@dataclass(frozen=True)
class AgentCard:
    """What a trained agent model expects.

    Args:
        prompt: the instruction template it was trained with (a name in `coa.prompts.INSTRUCTIONS` or a text).
        action_format: its tags (`ActionFormat` fields).
    """

    prompt: str
    action_format: dict[str, str]

    @property
    def stop_strings(self) -> list[str]:
        """Where generation stops for the tool to answer."""
        return [self.action_format["action_close"]]

    def tags(self) -> ActionFormat:
        return ActionFormat(**self.action_format)


def card_for(prompt: str, fmt: ActionFormat = AUTOCOA) -> AgentCard:
    return AgentCard(prompt, {f.name: getattr(fmt, f.name) for f in fields(ActionFormat)})


def write_card(model_dir: str | Path, card: AgentCard) -> None:
    data = {**asdict(card), "stop_strings": card.stop_strings}
    Path(model_dir, CARD_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_card(model_dir: str | Path) -> AgentCard | None:
    """The card of a local model directory, or None (no card: a model coa did not train, or a hub id)."""
    path = Path(model_dir, CARD_FILE)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return AgentCard(str(data["prompt"]), dict(data["action_format"]))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a coa agent card ({err}); fields: prompt, action_format") from None


def resolve_prompt(given: str | None, model_dir: str | Path, where: str) -> str:
    """The prompt to use: `given` if set (with a warning when it differs from the model's card), else the card's,
    else AutoCoA's."""
    card = read_card(model_dir)
    if given is None:
        return card.prompt if card else DEFAULT_PROMPT
    if card is not None and card.prompt != given:
        warnings.warn(
            f"{where}: prompt {given!r} overrides {Path(model_dir, CARD_FILE)}, which says the model was trained "
            f"with {card.prompt!r}; leave the prompt unset to use the model's own"
        )
    return given
