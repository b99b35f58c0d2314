"""`coa eval`: EM/F1/lenient of a model on question files, with its tool and baselines; JSON, markdown and a PNG out.

Modes (`--modes`): `search` (the tool answers the model's actions), `closed_book` (every action is refused),
`naive_rag` (the tool is called once with the question and its passages go in the prompt; actions are refused).
The untrained model prompted as an agent is the `search` mode of the base model: `coa eval --model BASE ...`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

from coa.benchmarks import read_benchmarks
from coa.data.atomic import atomic_open, write_jsonl
from coa.data.qa import QAExample
from coa.rollout.engines.hf import HFEngine
from coa.evaluation import DEFAULT_MODES, MODES, Prediction, markdown_table, predictions_as_rows, run_mode, summarize
from coa.formats.action_format import ActionFormat, action_format
from coa.models.agent_card import read_card, resolve_prompt
from coa.naive_rag import retrieve_for_questions
from coa.policy import Policy
from coa.prompts import PromptTemplate
from coa.rollout.runner import RolloutRunner, RolloutSettings, UnavailableTool
from coa.success_by_searches import PLOT_FILE, plot_success_by_searches, success_by_searches
from coa.tools.base import Tool
from coa.tools.bm25 import BM25Search
from coa.tools.registry import qualified_name, tool_from_config

TOOL_MODES = ("search", "naive_rag")  # the modes that call the tool


@dataclass
class EvalReport:
    """What an evaluation gives back.

    Args:
        metrics: `{"<mode>/<group>": {"n", "em", "f1", "lenient", "searches", "format_error_rate"}}`.
        markdown: the table, one row per group and mode.
        success_by_searches: search mode: `{searches: {"n", "em"}}` (empty without the search mode).
    """

    metrics: dict
    markdown: str
    success_by_searches: dict = field(default_factory=dict)


def evaluate_model(
    model_dir: str,
    qa_path: str | Sequence[str],
    corpus_path: str | None = None,
    topk: int = 3,
    tool: str | dict | Tool | None = None,
    fmt: str | dict | ActionFormat | None = None,
    prompt: str | None = None,
    max_actions: int = 5,
    max_new_tokens: int = 128,
    max_response_tokens: int = 1024,
    batch_size: int = 64,
    limit: int | None = None,
    modes: tuple[str, ...] = DEFAULT_MODES,
    out_dir: str | None = None,
    torch_threads: int | None = None,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    per_source: int | None = None,
) -> EvalReport:
    """Evaluates a Hugging Face model directory; writes metrics.json, predictions.jsonl, table.md and, with the
    search mode, success_by_searches.png to `out_dir`.

    The tool is BM25 over `corpus_path` unless `tool` names another (a registered name such as "http_search",
    a class path, or {"class_path": ..., "init_args": {...}}); closed_book and naive_rag answer the model's
    actions with a refusal. The prompt and the tags default to the model's own (`coa_agent.json`, written when
    coa trained it), else AutoCoA's.

    Args:
        qa_path: one question file or several (QA JSONL or verl parquet); rows are grouped by benchmark
            (`source_file`, or the file when several are given).
        limit: the first N questions of each file.
        per_source: the first N questions of each benchmark (AutoCoA's test mix: 7 benchmarks).
        modes: any of `MODES`.
    """
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"eval: unknown modes {unknown}; choose from {list(MODES)}")
    tool_modes = sorted(set(modes) & set(TOOL_MODES))
    if tool is None and corpus_path is None and tool_modes:
        raise ValueError(f"eval: modes {tool_modes} need a corpus (BM25 search over it) or a tool spec (--tool)")
    prompt = resolve_prompt(prompt, model_dir, "coa eval")
    card = read_card(model_dir)
    tags = action_format(fmt) if fmt is not None else (card.tags() if card else action_format("autocoa"))
    search_tool = build_tool(corpus_path, topk, tool) if tool_modes else None
    if torch_threads:
        torch.set_num_threads(torch_threads)
    examples = read_benchmarks(qa_path, limit, per_source)
    policy = Policy(model_dir, dtype=dtype, trust_remote_code=trust_remote_code)
    engine = HFEngine(policy.model, policy.tokenizer, batch_size=batch_size, progress=True)
    settings = RolloutSettings(max_actions=max_actions, max_turn_tokens=max_new_tokens, max_response_tokens=max_response_tokens)
    predictions = []
    try:
        for mode in modes:
            environment = search_tool if mode == "search" else UnavailableTool()
            runner = RolloutRunner(engine, environment, policy.tokenizer, tags, settings)
            predictions += run_one_mode(examples, runner, PromptTemplate(prompt), mode, search_tool)
    finally:
        close = getattr(search_tool, "close", None)
        if callable(close) and not isinstance(tool, Tool):  # a tool built here (HTTP pool); the caller's stays open
            close()
    summary = summarize(predictions)
    report = EvalReport(summary, markdown_table(summary), success_by_searches(predictions) if "search" in modes else {})
    if out_dir:
        run = {"model": model_dir, "qa": qa_path if isinstance(qa_path, str) else list(qa_path), "prompt": prompt,
               "tool": describe_tool(corpus_path, topk, tool), "modes": list(modes), "limit": limit, "per_source": per_source}
        write_report(Path(out_dir), report, predictions, run)
    return report


def build_tool(corpus_path: str | None, topk: int, tool: str | dict | Tool | None) -> Tool:
    """BM25 over the corpus, or the tool a spec names."""
    return BM25Search(corpus_path, topk=topk) if tool is None else tool_from_config(tool)


def describe_tool(corpus_path: str | None, topk: int, tool: str | dict | Tool | None) -> str | dict:
    """The tool as metrics.json records it: the spec given, a Tool's class path, or the BM25 corpus."""
    if tool is None:
        return {"class_path": qualified_name(BM25Search), "init_args": {"corpus_path": corpus_path, "topk": topk}}
    return qualified_name(type(tool)) if isinstance(tool, Tool) else tool


def run_one_mode(
    examples: list[QAExample], runner: RolloutRunner, template: PromptTemplate, mode: str, tool: Tool | None
) -> list[Prediction]:
    """One mode over every question; naive_rag first retrieves with each question (one batched tool call)."""
    start = time.time()
    passages = retrieve_for_questions(tool, [e.question for e in examples], runner.fmt) if mode == "naive_rag" else None
    predictions = run_mode(examples, runner, template, mode, passages)
    print(f"[eval] {mode}: {len(examples)} questions in {time.time() - start:.0f} s", flush=True)
    return predictions


def write_report(out: Path, report: EvalReport, predictions: list[Prediction], run: dict) -> None:
    """metrics.json (the run's settings, the metrics, success by searches), predictions.jsonl, table.md, the PNG."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / "metrics.json") as f:
        stats = {str(k): v for k, v in report.success_by_searches.items()}
        json.dump({**run, "metrics": report.metrics, "success_by_searches": stats}, f, indent=2)
    write_jsonl(out / "predictions.jsonl", predictions_as_rows(predictions))
    with atomic_open(out / "table.md") as f:
        f.write(report.markdown + "\n")
    if report.success_by_searches:
        title = "/".join(Path(run["model"]).parts[-2:]) + ": EM by searches used"
        plot_success_by_searches(report.success_by_searches, out / PLOT_FILE, title)


def yaml_value(text: str) -> str | dict:
    """A command-line value that may be a plain name or an inline YAML mapping."""
    return OmegaConf.to_container(OmegaConf.create(text)) if text.lstrip().startswith("{") else text


EXAMPLES = """examples:
  coa eval --model runs/sft2/model --qa runs/world/qa/test.jsonl --corpus runs/world/corpus.jsonl --out runs/eval
  coa eval --model DIR --qa test.parquet --per_source 20 --corpus corpus.jsonl \\
      --modes search closed_book naive_rag --out runs/eval_bench         # AutoCoA's 7 benchmarks, 20 questions each
  coa serve-retriever --corpus corpus.jsonl --port 8000 &                 # a retrieval server (or FlashRAG's, Search-R1's)
  coa eval --model DIR --qa test.parquet --tool '{class_path: http_search, init_args: {url: http://127.0.0.1:8000/retrieve}}'
  coa eval --model BASE_MODEL --qa test.parquet --prompt autocoa ...      # the untrained model prompted as an agent
  coa eval --model DIR --qa nq/test.jsonl hotpotqa/dev.jsonl ...          # FlashRAG files: a table row per file
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coa eval", description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True, help="Hugging Face model directory (or hub id)")
    p.add_argument("--qa", required=True, nargs="+",
                   help="question files: FlashRAG QA JSONL (id, question, golden_answers) or verl parquet; several allowed")
    p.add_argument("--corpus", default=None, help="corpus JSONL (id, contents) searched with BM25")
    p.add_argument("--tool", default=None, type=yaml_value,
                   help="another tool instead of BM25: a name, a class path, or YAML '{class_path: pkg.Tool, init_args: {...}}'")
    p.add_argument("--format", default=None, type=yaml_value,
                   help="action tags: autocoa, search_r1, or a YAML mapping of tags (default: the model's coa_agent.json, else autocoa)")
    p.add_argument("--topk", type=int, default=3, help="passages per BM25 search")
    p.add_argument("--prompt", default=None,
                   help="autocoa (AutoCoA's long instruction), short, or a text with {question} "
                        "(default: the model's coa_agent.json, else autocoa)")
    p.add_argument("--max_actions", type=int, default=5)
    p.add_argument("--max_new_tokens", type=int, default=128, help="per generation turn")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--limit", type=int, default=None, help="the first N questions of each file")
    p.add_argument("--per_source", type=int, default=None,
                   help="the first N questions of each benchmark (source_file), e.g. 20 of each of test.parquet's 7")
    p.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=list(MODES),
                   help="search: the tool answers; closed_book: no tool; naive_rag: passages for the question in the prompt, no tool")
    p.add_argument("--out", default=None, help="directory for metrics.json, predictions.jsonl, table.md, success_by_searches.png")
    p.add_argument("--torch_threads", type=int, default=None)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="weight dtype")
    p.add_argument("--trust_remote_code", action="store_true", help="allow models with custom code")
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    report = evaluate_model(
        model_dir=args.model, qa_path=args.qa[0] if len(args.qa) == 1 else args.qa, corpus_path=args.corpus,
        topk=args.topk, tool=args.tool, fmt=args.format, prompt=args.prompt,
        max_actions=args.max_actions, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        limit=args.limit, modes=tuple(args.modes), out_dir=args.out, torch_threads=args.torch_threads,
        dtype=args.dtype, trust_remote_code=args.trust_remote_code, per_source=args.per_source,
    )
    print(report.markdown)
