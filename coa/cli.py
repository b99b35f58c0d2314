"""The `coa` command: Lightning's fit/validate/test on YAML configs, plus `world`, `eval` and `quickstart`."""

from __future__ import annotations

import os
import sys

TRAINER_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _defaults_for_every_run() -> None:
    # W&B logs offline unless the user says otherwise (WANDB_MODE=online works unchanged).
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> None:
    """Dispatches `coa <command> ...`."""
    _defaults_for_every_run()
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "--help"
    if command == "world":
        from coa.commands.world import main as world_main

        world_main(args[1:])
    elif command == "eval":
        from coa.commands.evaluate import main as eval_main

        eval_main(args[1:])
    elif command == "quickstart":
        from coa.commands.quickstart import main as quickstart_main

        quickstart_main(args[1:])
    else:
        from coa.lightning_cli import run_lightning_cli

        run_lightning_cli(args)


if __name__ == "__main__":
    main()
