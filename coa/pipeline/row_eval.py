"""Each row's final model through `coa eval` (search and closed-book on the held-out questions), cached per row."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import yaml

from coa.pipeline.config import PipelineConfig, stage_overrides
from coa.pipeline.overrides import merge_overrides
from coa.pipeline.markers import is_done, write_marker
from coa.pipeline.spec import StageNode
from coa.pipeline.stage_args import stage_yaml

METRICS_FILE = "metrics.json"


def eval_dir(out: Path, node: StageNode) -> Path:
    return out / "eval" / node.key


def read_metrics(folder: Path) -> dict:
    """`{"<mode>/<group>": {...}}` from a finished `coa eval` folder."""
    path = folder / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no evaluation here; run `coa pipeline` to evaluate this row")
    return json.loads(path.read_text(encoding="utf-8"))["metrics"]


def row_prompt(config: PipelineConfig, node: StageNode) -> str | None:
    """The instruction a row is evaluated with: `eval.prompt`, else a trained row's own (its agent card, None here)
    and, for the untrained model, `eval.base_prompt`, else the one the stages train with."""
    if config.eval.prompt is not None or node.path:
        return config.eval.prompt
    if config.eval.base_prompt is not None:
        return config.eval.base_prompt
    for stage in config.stages:
        data = merge_overrides(yaml.safe_load(stage_yaml(config, stage).read_text(encoding="utf-8")), stage_overrides(config, stage))
        prompt = data.get("data", {}).get("init_args", {}).get("prompt")
        if prompt:
            return prompt
    return None


def eval_fingerprint(
    config: PipelineConfig, node: StageNode, questions: str, corpus: str | None, topk: int, stage_fingerprint: dict
) -> dict:
    """What decides a row's evaluation: its model's stage, the questions, the corpus and the eval settings."""
    settings = {**asdict(config.eval), "topk": topk, "prompt": row_prompt(config, node)}
    return {"stage": stage_fingerprint, "questions": questions, "corpus": corpus, "eval": settings}


def is_evaluated(out: Path, node: StageNode, fingerprint: dict) -> bool:
    return is_done(eval_dir(out, node), fingerprint)


def evaluate_row(
    config: PipelineConfig, node: StageNode, out: Path, model_dir: str, questions: str, corpus: str | None, topk: int,
    fingerprint: dict,
) -> dict:
    """`coa eval` of a row's final model (`model_dir`) into out/eval/<path>/; its metrics."""
    from coa.commands.evaluate import evaluate_model

    folder = eval_dir(out, node)
    start = time.time()
    e = config.eval
    evaluate_model(
        model_dir=model_dir, qa_path=questions, corpus_path=corpus, topk=topk, tool=e.tool,
        prompt=row_prompt(config, node), max_actions=e.max_actions, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size,
        limit=e.limit, per_source=e.per_source, modes=tuple(e.modes), out_dir=str(folder), torch_threads=config.torch_threads,
        dtype=e.dtype,
    )
    write_marker(folder, fingerprint, seconds=round(time.time() - start, 1))
    return read_metrics(folder)


def evaluate_row_in_child(
    config: PipelineConfig, node: StageNode, out: Path, model_dir: str, questions: str, corpus: str | None, topk: int,
    fingerprint: dict,
) -> None:
    """`evaluate_row` in a child process (`config.torch_threads` threads), so it runs beside a stage's training."""
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(
        target=evaluate_row, args=(config, node, out, model_dir, questions, corpus, topk, fingerprint),
        name=f"eval {node.key}",
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"evaluation of {node.key} exited with code {child.exitcode} (its output is above)")
