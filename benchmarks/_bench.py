"""What the benchmark scripts share: loading one another as modules (their names start with a digit)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def load(name: str):
    """``benchmarks/<name>.py`` as a module, e.g. ``load("quality")`` or ``load("05_diffusion")``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
