"""Search evaluation: roll out every question with the tool and closed-book, score EM/F1, tabulate by group."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

from transformers import PreTrainedTokenizerBase

from coa.data.qa import QAExample
from coa.formats.action_format import AUTOCOA, ActionFormat
from coa.prompts import PromptTemplate
from coa.rewards.em import exact_match, f1_score
from coa.rollout.runner import Rollout, RolloutRunner

MODES = ("search", "closed_book")


@dataclass
class Prediction:
    """One question's outcome in one mode."""

    id: str
    mode: str
    question: str
    golds: list[str]
    answer: str | None
    em: float
    f1: float
    searches: int
    format_errors: list[str]
    output: str
    meta: dict = field(default_factory=dict)


def score_rollout(example: QAExample, mode: str, rollout: Rollout, text: str, fmt: ActionFormat) -> Prediction:
    answer = fmt.extract_answer(text.split(fmt.think_close)[-1]) if fmt.think_close in text else fmt.extract_answer(text)
    errors = fmt.parse_output(text).errors + (["truncated"] if rollout.truncated else [])
    return Prediction(
        id=example.id, mode=mode, question=example.question, golds=example.golds, answer=answer,
        em=exact_match(answer, example.golds), f1=f1_score(answer, example.golds),
        searches=rollout.tool_calls, format_errors=errors, output=text, meta=example.meta,
    )


def run_mode(
    examples: list[QAExample], runner: RolloutRunner, template: PromptTemplate, mode: str
) -> list[Prediction]:
    tokenizer: PreTrainedTokenizerBase = runner.tokenizer
    prompts = [
        list(tokenizer.apply_chat_template(template.messages(e.question), add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
        for e in examples
    ]
    rollouts = runner.run(prompts)
    return [score_rollout(e, mode, r, runner.text(r), runner.fmt) for e, r in zip(examples, rollouts)]


CHAIN_KINDS = ("single", "chain2", "chain3", "chain4")


def group_keys(prediction: Prediction) -> list[str]:
    """The table rows a prediction counts in.

    `all`; `needs_search` (every kind but no_search: closed-book should fail there); `hops=k` for
    k-hop chains (a comparison's two searches are not a chain: it has its own kind row); the kind;
    and seen/unseen entity.
    """
    keys = ["all"]
    meta = prediction.meta
    kind = meta.get("kind")
    if kind is not None and kind != "no_search":
        keys.append("needs_search")
    if "hops" in meta and (kind is None or kind in CHAIN_KINDS):
        keys.append(f"hops={meta['hops']}")
    if kind is not None:
        keys.append(f"kind={kind}")
    if "unseen_entity" in meta and kind != "no_search":
        keys.append("entity=unseen" if meta["unseen_entity"] else "entity=seen")
    return keys


def summarize(predictions: list[Prediction]) -> dict[str, dict[str, float]]:
    """`{"<mode>/<group>": {"n", "em", "f1", "searches", "format_error_rate"}}` over the predictions."""
    buckets: dict[str, list[Prediction]] = defaultdict(list)
    for p in predictions:
        for key in group_keys(p):
            buckets[f"{p.mode}/{key}"].append(p)
    summary = {}
    for key, ps in sorted(buckets.items()):
        n = len(ps)
        summary[key] = {
            "n": n,
            "em": sum(p.em for p in ps) / n,
            "f1": sum(p.f1 for p in ps) / n,
            "searches": sum(p.searches for p in ps) / n,
            "format_error_rate": sum(bool(p.format_errors) for p in ps) / n,
        }
    return summary


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    """One row per group; search and closed-book side by side."""
    groups = sorted({k.split("/", 1)[1] for k in summary}, key=_group_order)
    lines = [
        "| group | n | EM search | F1 search | EM closed-book | searches/q | format errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for g in groups:
        s, c = summary.get(f"search/{g}"), summary.get(f"closed_book/{g}")
        ref = s or c
        cell = lambda d, k, fmt="{:.3f}": fmt.format(d[k]) if d else "-"
        lines.append(
            f"| {g} | {ref['n']} | {cell(s, 'em')} | {cell(s, 'f1')} | {cell(c, 'em')} | "
            f"{cell(s, 'searches', '{:.2f}')} | {cell(s, 'format_error_rate', '{:.1%}')} |"
        )
    return "\n".join(lines)


def _group_order(group: str) -> tuple[int, str]:
    order = {"all": 0, "needs_search": 1, "hops": 2, "entity": 3, "kind": 4}
    return order.get(group.split("=")[0], 9), group


def predictions_as_rows(predictions: list[Prediction]) -> list[dict]:
    return [asdict(p) for p in predictions]
