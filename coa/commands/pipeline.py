"""`coa pipeline`: the AutoCoA recipe's stage combinations (Table 1's rows) from one config, and their table.

  coa pipeline [--config configs/pipeline.yaml] [key=value ...]   train what the rows need, evaluate, write Table 1
  coa pipeline table --run DIR                                      write Table 1 again from a run's evaluations
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf


def main(argv: list[str]) -> None:
    if argv[:1] == ["table"]:
        table_main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="coa pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML (default: the packaged configs/pipeline.yaml, the quick preset)")
    parser.add_argument("overrides", nargs="*",
                        help="key=value overrides, e.g. out=runs/p2 seed=1 'rows=[sft2,sft1-sft2]' stages.sft2.max_steps=50")
    args = parser.parse_args(argv)
    from coa.pipeline.config import load_pipeline_config
    from coa.pipeline.runner import run_pipeline

    try:
        config = load_pipeline_config(args.config, args.overrides)
    except ValueError as e:
        sys.exit(f"coa pipeline: {e}")
    run_pipeline(config)


def table_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="coa pipeline table", description="Table 1 of a finished pipeline run, written again")
    parser.add_argument("--run", required=True, help="the pipeline's `out` folder")
    args = parser.parse_args(argv)
    from coa.pipeline.config import PipelineConfig, check
    from coa.pipeline.report import collect_rows, write_table
    from coa.pipeline.runner import CONFIG_FILE

    run = Path(args.run)
    saved = run / CONFIG_FILE
    if not saved.is_file():
        sys.exit(f"coa pipeline table: {saved} not found: is {run} a pipeline's out folder?")
    config: PipelineConfig = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PipelineConfig), OmegaConf.load(saved)))
    check(config, saved)
    print(write_table(config, run, collect_rows(config, run)))
