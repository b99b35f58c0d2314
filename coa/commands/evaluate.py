"""`coa eval`: EM/F1 of a model on a QA file, with the search tool and closed-book; JSON + markdown out."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from coa.data.atomic import atomic_open, write_jsonl
from coa.data.questions import read_questions
from coa.rollout.engines.hf import HFEngine
from coa.evaluation import MODES, markdown_table, predictions_as_rows, run_mode, summarize
from coa.formats.action_format import ActionFormat, action_format
from coa.models.agent_card import read_card, resolve_prompt
from coa.policy import Policy
from coa.prompts import PromptTemplate
from coa.rollout.runner import RolloutRunner, RolloutSettings, UnavailableTool
from coa.tools.base import Tool
from coa.tools.bm25 import BM25Search
from coa.tools.registry import tool_from_config


@dataclass
class EvalReport:
    metrics: dict
    markdown: str


def evaluate_model(
    model_dir: str,
    qa_path: str,
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
    modes: tuple[str, ...] = MODES,
    out_dir: str | None = None,
    torch_threads: int | None = None,
    dtype: str = "float32",
    trust_remote_code: bool = False,
) -> EvalReport:
    """Evaluates a Hugging Face model directory; writes metrics.json, predictions.jsonl, table.md to `out_dir`.

    The tool is BM25 over `corpus_path` unless `tool` names another (a registered name, a class path,
    or {"class_path": ..., "init_args": {...}}); closed-book replaces it with a refusal. The prompt and the
    tags default to the model's own (`coa_agent.json`, written when coa trained it), else AutoCoA's.
    """
    if tool is None and corpus_path is None:
        raise ValueError("eval: give a corpus (BM25 search over it) or a tool spec")
    prompt = resolve_prompt(prompt, model_dir, "coa eval")
    card = read_card(model_dir)
    tags = action_format(fmt) if fmt is not None else (card.tags() if card else action_format("autocoa"))
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"eval: unknown modes {unknown}; choose from {list(MODES)}")
    if "search" not in modes:
        search_tool = None  # closed-book only: no index to build
    else:
        search_tool = BM25Search(corpus_path, topk=topk) if tool is None else tool_from_config(tool)
    if torch_threads:
        torch.set_num_threads(torch_threads)
    examples = read_questions(qa_path, limit)
    template = PromptTemplate(prompt)
    policy = Policy(model_dir, dtype=dtype, trust_remote_code=trust_remote_code)
    engine = HFEngine(policy.model, policy.tokenizer, batch_size=batch_size, progress=True)
    settings = RolloutSettings(max_actions=max_actions, max_turn_tokens=max_new_tokens, max_response_tokens=max_response_tokens)
    predictions = []
    for mode in modes:
        runner = RolloutRunner(engine, search_tool if mode == "search" else UnavailableTool(), policy.tokenizer, tags, settings)
        start = time.time()
        predictions += run_mode(examples, runner, template, mode)
        print(f"[eval] {mode}: {len(examples)} questions in {time.time() - start:.0f} s", flush=True)
    summary = summarize(predictions)
    report = EvalReport(metrics=summary, markdown=markdown_table(summary))
    if out_dir:
        write_report(Path(out_dir), report, predictions, {"model": model_dir, "qa": qa_path, "prompt": prompt})
    return report


def write_report(out: Path, report: EvalReport, predictions, run: dict) -> None:
    """metrics.json (the run's model, questions and prompt, then the metrics), predictions.jsonl, table.md."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / "metrics.json") as f:
        json.dump({**run, "metrics": report.metrics}, f, indent=2)
    write_jsonl(out / "predictions.jsonl", predictions_as_rows(predictions))
    with atomic_open(out / "table.md") as f:
        f.write(report.markdown + "\n")


def yaml_value(text: str) -> str | dict:
    """A command-line value that may be a plain name or an inline YAML mapping."""
    return OmegaConf.to_container(OmegaConf.create(text)) if text.lstrip().startswith("{") else text


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="coa eval", description=__doc__)
    parser.add_argument("--model", required=True, help="Hugging Face model directory (or hub id)")
    parser.add_argument("--qa", required=True, help="questions: FlashRAG QA JSONL (id, question, golden_answers) or verl parquet")
    parser.add_argument("--corpus", default=None, help="corpus JSONL (id, contents) searched with BM25")
    parser.add_argument("--tool", default=None, type=yaml_value,
                        help="another tool instead of BM25: a name, a class path, or YAML '{class_path: pkg.Tool, init_args: {...}}'")
    parser.add_argument("--format", default=None, type=yaml_value,
                        help="action tags: autocoa, search_r1, or a YAML mapping of tags (default: the model's coa_agent.json, else autocoa)")
    parser.add_argument("--topk", type=int, default=3)
    parser.add_argument("--prompt", default=None,
                        help="autocoa, short, or a text with {question} (default: the model's coa_agent.json, else autocoa)")
    parser.add_argument("--max_actions", type=int, default=5)
    parser.add_argument("--max_new_tokens", type=int, default=128, help="per generation turn")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N questions only")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--out", default=None, help="directory for metrics.json, predictions.jsonl, table.md")
    parser.add_argument("--torch_threads", type=int, default=None)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="weight dtype")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow models with custom code")
    args = parser.parse_args(argv)
    report = evaluate_model(
        model_dir=args.model, qa_path=args.qa, corpus_path=args.corpus, topk=args.topk, tool=args.tool, fmt=args.format,
        prompt=args.prompt,
        max_actions=args.max_actions, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        limit=args.limit, modes=tuple(args.modes), out_dir=args.out, torch_threads=args.torch_threads,
        dtype=args.dtype, trust_remote_code=args.trust_remote_code,
    )
    print(report.markdown)
