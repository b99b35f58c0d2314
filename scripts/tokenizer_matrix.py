"""Issue 9's tokenizer-family matrix as a markdown table: per family, SFT2 on one trajectory, export, `coa eval`.

    .venv/bin/python scripts/tokenizer_matrix.py [--steps 150]

The families and the run are tests/models/families.py's (the test tests/models/test_families.py asserts on them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models"))

import torch  # noqa: E402

import families  # noqa: E402


def table_row(run: families.FamilyRun, width: int = 200) -> str:
    trajectory = run.trajectory[:width].replace("|", "\\|").replace("\n", " ")
    if run.traceback:
        trajectory = "TRACEBACK: " + run.traceback.strip().splitlines()[-1]
    return f"| {run.family} | {run.searches} | {run.em:.1f} | {', '.join(run.format_errors) or '-'} | {run.seconds:.1f} | `{trajectory}` |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="SFT2 optimizer steps per family")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for family in families.FAMILIES:
            rows.append(table_row(families.run_family(family, Path(work) / family, args.steps)))
    print("| family | searches | EM | format errors | s | trajectory (first 200 chars) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
