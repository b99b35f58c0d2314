"""`coa pipeline`: every stage of the rows' tree once (finished ones skipped, killed ones resumed), each row
evaluated once, then Table 1."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from coa.data.atomic import atomic_open
from coa.pipeline.config import PipelineConfig, stage_settings, to_yaml
from coa.pipeline.launch import LAUNCH, StageFailed, fit_subprocess
from coa.pipeline.markers import changed_keys, read_marker, read_started, write_marker, write_started
from coa.pipeline.prepare import eval_questions, eval_topk, prepare_base_model, prepare_world, stage_data
from coa.pipeline.pretrain import pretrain_base_model
from coa.pipeline.progress import Progress, format_duration
from coa.pipeline.report import collect_rows, log_wandb_table, write_table
from coa.pipeline.row_eval import eval_fingerprint, evaluate_row, evaluate_row_in_child, is_evaluated
from coa.pipeline.schedule import Task, run_tasks
from coa.pipeline.spec import StageNode, parse_row, row_label, rows_served, stage_tree
from coa.pipeline.stage_args import StageData, fingerprint, max_steps, stage_args, stage_dir

STATE_FILE = "pipeline.json"  # the W&B group, kept so a resumed pipeline logs into the same one
CONFIG_FILE = "pipeline.yaml"  # the settings of the latest finished run (`coa pipeline table --run DIR` reads them)
STARTED_FILE = "stage.json"  # in a stage folder: the fingerprint and arguments it started with


@dataclass
class PipelineResult:
    """What a run did: stage paths trained (or resumed) and skipped, rows evaluated now, the table."""

    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    table: str = ""
    seconds: float = 0.0


@dataclass
class Context:
    """What every stage of one run shares."""

    config: PipelineConfig
    out: Path
    base_model: str
    data: StageData
    root: dict  # fingerprints of the base model and the world
    group: str
    progress: Progress


def log(message: str) -> None:
    print(f"[pipeline] {message}", flush=True)


def wandb_group(config: PipelineConfig, out: Path) -> str:
    """The run's W&B group: the config's, else the one this folder got on its first run, else a new one."""
    state_path = out / STATE_FILE
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
    group = config.wandb.group or state.get("group") or f"pipeline-{out.resolve().name}-{secrets.token_hex(3)}"
    if state.get("group") != group:
        with atomic_open(state_path) as f:
            json.dump({**state, "group": group}, f, indent=2)
    return group


def run_pipeline(config: PipelineConfig) -> PipelineResult:
    """Trains what the rows need, evaluates each row, writes Table 1 under `config.out`."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress({name: stage_settings(config, name).seconds_per_step for name in config.stages})
    world, world_fingerprint = prepare_world(config, out)
    base_model, base_fingerprint = prepare_base_model(config, out, world, world_fingerprint)
    group = wandb_group(config, out)
    if config.base_model is None and config.pretrain.max_steps > 0:  # a tiny random model learns to read first
        base_model, base_fingerprint = pretrain_base_model(
            config, Path(base_model), out / "model" / "pretrain", base_fingerprint, group
        )
    ctx = Context(config, out, base_model, stage_data(config, world),
                  {"base_model": base_fingerprint, "world": world_fingerprint}, group, progress)
    result = PipelineResult()
    if config.workers > 1:
        run_tasks(pipeline_tasks(ctx, world, result), config.workers)
    else:
        nodes = stage_tree(config.rows)
        for i in range(len(nodes)):
            train_node(ctx, nodes, i, result)
        evaluate_rows(ctx, world, result)
    rows = collect_rows(config, out)
    result.table = write_table(config, out, rows)
    with atomic_open(out / CONFIG_FILE) as f:
        f.write(to_yaml(config))
    if config.wandb.enabled and (result.trained or result.evaluated or not (out / "wandb").is_dir()):
        log_wandb_table(config, out, rows, ctx.group)
    result.seconds = progress.elapsed()
    log(f"done in {format_duration(result.seconds)}: trained {len(result.trained)} stages, skipped {len(result.skipped)}; "
        f"Table 1 in {out}/table.md|csv|png\n\n{result.table}")
    return result


def train_node(ctx: Context, nodes: list[StageNode], i: int, result: PipelineResult) -> None:
    """`run_stage` for the tree's i-th stage, recorded in `result` as trained or skipped."""
    ran = run_stage(ctx, nodes[i], nodes[i + 1:], f"{i + 1}/{len(nodes)}")
    (result.trained if ran else result.skipped).append(nodes[i].key)


def run_stage(ctx: Context, node: StageNode, later: list[StageNode], position: str) -> bool:
    """Trains `node` unless its finished export is there; resumes from its last checkpoint if one is. True if it ran."""
    folder = stage_dir(ctx.out, node)
    expected = fingerprint(ctx.config, node, ctx.root, ctx.data)
    served = ", ".join(rows_served(node, ctx.config.rows))
    marker = read_marker(folder)
    if marker is not None and (folder / "model").is_dir():
        check_same(folder, node, marker["fingerprint"], expected, later)
        log(f"stage {position} {node.key}: done before, skipped ({folder / 'model'}; rows {served})")
        return False
    started = read_started(folder, STARTED_FILE)
    if started is not None:
        check_same(folder, node, started, expected, later)
    args = stage_args(ctx.config, node, ctx.out, ctx.base_model, ctx.data, ctx.group)
    last = folder / "checkpoints" / "last.ckpt"
    resume = last.is_file()
    if resume:
        args.append(f"--ckpt_path={last}")
    write_started(folder, STARTED_FILE, expected, args=args)
    steps = max_steps(ctx.config, node.stage)
    remaining = [(n.stage, max_steps(ctx.config, n.stage)) for n in [node, *later] if read_marker(stage_dir(ctx.out, n)) is None]
    how = f"resumes from {last}" if resume else f"{steps} steps from {node.parent.key if node.parent else ctx.base_model}"
    log(f"stage {position} {node.key} ({row_label(node.path)}): {how}; rows {served} | {ctx.progress.line(remaining)}")
    start = time.time()
    if ctx.config.workers > 1:
        fit_subprocess(args + [f"--torch_threads={worker_threads(ctx.config)}"])
    else:
        LAUNCH[ctx.config.launcher](args)
    seconds = time.time() - start
    if not (folder / "model").is_dir():
        raise StageFailed(f"stage {node.key} finished without an export in {folder / 'model'}; "
                          f"delete {last} to train it afresh")
    write_marker(folder, expected, seconds=round(seconds, 1), steps=steps, resumed=resume, finished_at=time.time())
    if not resume:
        ctx.progress.record(node.stage, steps, seconds)
    log(f"stage {position} {node.key}: trained in {format_duration(seconds)} -> {folder / 'model'}")
    return True


def check_same(folder: Path, node: StageNode, found: dict, expected: dict, later: list[StageNode]) -> None:
    """A stage folder written with other settings is neither reused nor resumed: say what changed and the fix."""
    changed = changed_keys(found, json.loads(json.dumps(expected)))
    if changed:
        after = [n.key for n in later if n.path[: len(node.path)] == node.path]
        raise ValueError(
            f"pipeline: {folder} was trained with other settings (changed: {', '.join(changed)}); delete it"
            + (f" and the stages built on it ({', '.join(after)})" if after else "")
            + ", or choose another `out`"
        )


def trained_model(ctx: Context, node: StageNode) -> dict:
    """What decided a stage's export, and when it was written (a stage trained again is evaluated again)."""
    if not node.path:
        return ctx.root["base_model"]
    finished_at = read_marker(stage_dir(ctx.out, node))["finished_at"]
    return {**fingerprint(ctx.config, node, ctx.root, ctx.data), "finished_at": finished_at}


def pipeline_tasks(ctx: Context, world: Path | None, result: PipelineResult) -> list[Task]:
    """Every stage (after its parent) and every row's evaluation (after the row's last stage), for `run_tasks`."""
    nodes = stage_tree(ctx.config.rows)
    tasks = []
    for i, node in enumerate(nodes):
        tasks.append(Task(node.key, partial(train_node, ctx, nodes, i, result), (node.parent.key,) if node.parent else ()))
    questions, topk = eval_questions(ctx.config, world), eval_topk(ctx.config, world)
    config = replace(ctx.config, torch_threads=worker_threads(ctx.config))

    def in_child(node: StageNode, model: str, expected: dict) -> None:
        evaluate_row_in_child(config, node, ctx.out, model, questions, ctx.data.corpus, topk, expected)

    rows = [StageNode(parse_row(row)) for row in ctx.config.rows]
    for i, node in enumerate(rows):
        def evaluate(node: StageNode = node, i: int = i) -> None:
            where = f"eval {i + 1}/{len(rows)} {row_label(node.path)} ({node.key})"
            evaluate_node(ctx, node, row_fingerprint(ctx, node, questions, topk), where, questions, result, in_child)

        tasks.append(Task(f"eval:{node.key}", evaluate, (node.key,) if node.path else ()))
    return tasks


def worker_threads(config: PipelineConfig) -> int:
    """Threads of each of the `workers` processes: the run's (else every core) shared out."""
    return max(1, (config.torch_threads or os.cpu_count() or 1) // config.workers)


def evaluate_rows(ctx: Context, world: Path | None, result: PipelineResult) -> None:
    """Each row's final model on the held-out questions, in turn, in this process; a finished evaluation is reused."""
    questions, topk = eval_questions(ctx.config, world), eval_topk(ctx.config, world)

    def here(node: StageNode, model: str, expected: dict) -> None:
        evaluate_row(ctx.config, node, ctx.out, model, questions, ctx.data.corpus, topk, expected)

    nodes = [StageNode(parse_row(row)) for row in ctx.config.rows]
    expected = [row_fingerprint(ctx, n, questions, topk) for n in nodes]
    todo = sum(not is_evaluated(ctx.out, n, e) for n, e in zip(nodes, expected))
    spent: list[float] = []
    for i, node in enumerate(nodes):
        where = f"eval {i + 1}/{len(nodes)} {row_label(node.path)} ({node.key})"
        left = f", ~{format_duration(sum(spent) / len(spent) * (todo - len(spent)))} of evaluation left" if spent else ""
        start = time.time()
        if evaluate_node(ctx, node, expected[i], where, questions, result, here, left):
            spent.append(time.time() - start)


def row_fingerprint(ctx: Context, node: StageNode, questions: str, topk: int) -> dict:
    return eval_fingerprint(ctx.config, node, questions, ctx.data.corpus, topk, trained_model(ctx, node))


def evaluate_node(
    ctx: Context, node: StageNode, expected: dict, where: str, questions: str, result: PipelineResult,
    evaluate: Callable[[StageNode, str, dict], None], note: str = "",
) -> bool:
    """Evaluates a row's final model with `evaluate(node, model, expected)` unless a finished evaluation with the
    fingerprint `expected` is there (it says so); True if it ran."""
    if is_evaluated(ctx.out, node, expected):
        log(f"{where}: done before, skipped")
        return False
    log(f"{where} on {questions} | {format_duration(ctx.progress.elapsed())} so far{note}")
    evaluate(node, ctx.base_model if not node.path else str(stage_dir(ctx.out, node) / "model"), expected)
    result.evaluated.append(node.key)
    return True
