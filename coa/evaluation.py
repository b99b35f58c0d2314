"""Evaluation: roll out every question in each mode (with the tool, closed-book, naive RAG), score, tabulate by group."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from transformers import PreTrainedTokenizerBase

from coa.benchmarks import source_of
from coa.data.qa import QAExample
from coa.formats.action_format import AUTOCOA, ActionFormat
from coa.naive_rag import naive_rag_messages
from coa.prompts import PromptTemplate
from coa.rewards.autocoa_lenient import autocoa_lenient_reward
from coa.rewards.em import exact_match, f1_score
from coa.rollout.runner import Rollout, RolloutRunner

# search: the tool answers the model's actions. closed_book: every action is refused, the model answers
# from memory. naive_rag: the tool is called once with the question, the passages go in the prompt and
# every action the model still writes is refused. (The untrained model prompted as an agent is `search`
# with the base model: `coa eval --model BASE_MODEL ...`.)
MODES = ("search", "closed_book", "naive_rag")
DEFAULT_MODES = ("search", "closed_book")


@dataclass
class Prediction:
    """One question's outcome in one mode.

    Args:
        searches: the actions the environment answered (in closed_book and naive_rag: refused ones).
        lenient: the `autocoa_lenient` reward; None when the tags are not AutoCoA's (the rule reads those).
        passages: naive_rag only: the retrieved text put in the prompt.
    """

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
    lenient: float | None = None
    passages: str | None = None


def reads_autocoa_tags(fmt: ActionFormat) -> bool:
    """Whether the lenient rule (written for AutoCoA's think close, action open and boxed answer) applies."""
    fields = ("think_close", "action_open", "answer_open", "answer_close")
    return all(getattr(fmt, f) == getattr(AUTOCOA, f) for f in fields)


def score_rollout(
    example: QAExample, mode: str, rollout: Rollout, text: str, fmt: ActionFormat, passages: str | None = None
) -> Prediction:
    answer = fmt.extract_answer(text.split(fmt.think_close)[-1]) if fmt.think_close in text else fmt.extract_answer(text)
    errors = fmt.parse_output(text).errors + (["truncated"] if rollout.truncated else [])
    return Prediction(
        id=example.id, mode=mode, question=example.question, golds=example.golds, answer=answer,
        em=exact_match(answer, example.golds), f1=f1_score(answer, example.golds),
        searches=rollout.tool_calls, format_errors=errors, output=text, meta=example.meta,
        lenient=autocoa_lenient_reward(text, example.golds) if reads_autocoa_tags(fmt) else None,
        passages=passages,
    )


def encode_chat(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> list[int]:
    """The prompt's token ids: the chat template with the assistant's turn opened."""
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(encoded["input_ids"])


def run_mode(
    examples: list[QAExample],
    runner: RolloutRunner,
    template: PromptTemplate,
    mode: str,
    passages: Sequence[str] | None = None,
) -> list[Prediction]:
    """Rolls out every example with `runner` (whose environment the mode chose) and scores it.

    Args:
        passages: per example, retrieved text to put in the prompt (naive_rag); None for the plain prompt.
    """
    if passages is not None and len(passages) != len(examples):
        raise ValueError(f"run_mode: {len(passages)} passage texts for {len(examples)} questions")
    chats = [
        template.messages(e.question) if passages is None else naive_rag_messages(template, e.question, passages[i])
        for i, e in enumerate(examples)
    ]
    rollouts = runner.run([encode_chat(runner.tokenizer, chat) for chat in chats])
    return [
        score_rollout(e, mode, r, runner.text(r), runner.fmt, None if passages is None else passages[i])
        for i, (e, r) in enumerate(zip(examples, rollouts))
    ]


CHAIN_KINDS = ("single", "chain2", "chain3", "chain4")


def group_keys(prediction: Prediction) -> list[str]:
    """The table rows a prediction counts in.

    `all`; `source=<benchmark>` for benchmark files (AutoCoA's test mix, several FlashRAG files);
    `needs_search` (every world kind but no_search: closed-book should fail there); `hops=k` for k-hop
    chains (a comparison's two searches are not a chain: it has its own kind row); the kind; and
    seen/unseen entity.
    """
    keys = ["all"]
    meta = prediction.meta
    source = source_of(meta)
    if source is not None:
        keys.append(f"source={source}")
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


def summarize(predictions: list[Prediction]) -> dict[str, dict[str, float | None]]:
    """`{"<mode>/<group>": {"n", "em", "f1", "lenient", "searches", "format_error_rate"}}` over the predictions.

    `lenient` is None where no prediction of the group has a lenient score (tags other than AutoCoA's).
    """
    buckets: dict[str, list[Prediction]] = defaultdict(list)
    for p in predictions:
        for key in group_keys(p):
            buckets[f"{p.mode}/{key}"].append(p)
    summary = {}
    for key, ps in sorted(buckets.items()):
        n = len(ps)
        lenient = [p.lenient for p in ps if p.lenient is not None]
        summary[key] = {
            "n": n,
            "em": sum(p.em for p in ps) / n,
            "f1": sum(p.f1 for p in ps) / n,
            "lenient": sum(lenient) / len(lenient) if lenient else None,
            "searches": sum(p.searches for p in ps) / n,
            "format_error_rate": sum(bool(p.format_errors) for p in ps) / n,
        }
    return summary


def markdown_table(summary: dict[str, dict[str, float | None]]) -> str:
    """One row per group and mode (modes in `MODES` order, so the baselines sit under the search row)."""
    keys = [tuple(k.split("/", 1)) for k in summary]
    groups = sorted({g for _, g in keys}, key=_group_order)
    modes = sorted({m for m, _ in keys}, key=lambda m: (MODES.index(m) if m in MODES else len(MODES), m))
    lines = [
        "| group | mode | n | EM | F1 | lenient | searches/q | format errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for g in groups:
        for m in modes:
            s = summary.get(f"{m}/{g}")
            if s is not None:
                lines.append(
                    f"| {g} | {m} | {s['n']} | {s['em']:.3f} | {s['f1']:.3f} | {_cell(s['lenient'])} | "
                    f"{s['searches']:.2f} | {s['format_error_rate']:.1%} |"
                )
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _group_order(group: str) -> tuple[int, str]:
    order = {"all": 0, "source": 1, "needs_search": 2, "hops": 3, "entity": 4, "kind": 5}
    return order.get(group.split("=")[0], 9), group


def predictions_as_rows(predictions: list[Prediction]) -> list[dict]:
    return [asdict(p) for p in predictions]
