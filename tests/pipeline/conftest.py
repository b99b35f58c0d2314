"""tests/pipeline's helpers (tiny_pipeline.py) importable by name, as the stage runs import its callback by class path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
