"""Grading settings and limits: command-line flags, then ``DGM_GRADE_*`` variables, then defaults."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# (environment variable, default). Command-line flags and `make grade VAR=...` win.
SETTINGS = {
    "jobs": ("DGM_GRADE_JOBS", "auto"),
    "cell_timeout": ("DGM_GRADE_CELL_TIMEOUT", 120),
    "notebook_timeout": ("DGM_GRADE_NOTEBOOK_TIMEOUT", 900),
    "memory_mb": ("DGM_GRADE_MEMORY_MB", 4096),
}
MAX_KERNEL_RESTARTS = 3  # a notebook is re-run at most this often after its kernel died
MAX_OUTPUT_KB = 1024  # per cell; what a cell prints beyond this is dropped
MAX_NOTEBOOK_MB = 50  # a bigger submitted notebook is not graded
MAX_EXTRA_FILE_MB, MAX_EXTRA_TOTAL_MB = 20, 100  # extra files copied next to a notebook for grading


def grading_root() -> Path:
    """nbgrader's course root (``DGM_GRADING_ROOT`` or ``grading/``), as nbgrader_config.py sets it."""
    return Path(os.environ.get("DGM_GRADING_ROOT", REPO / "grading")).resolve()


def _available_memory_mb() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def grade_settings(**overrides) -> dict:
    """The grading settings: keyword overrides, else ``DGM_GRADE_*`` environment variables, else defaults.

    ``jobs`` (students graded at once; ``"auto"``: one per CPU core, as many as fit in memory at
    ``memory_mb`` plus 1 GiB for the grader each), ``cell_timeout`` (seconds a cell may run),
    ``notebook_timeout`` (seconds a whole notebook may run), ``memory_mb`` (address-space limit of
    a grading kernel). Raises ValueError naming the setting when a value is not a positive integer.
    """
    out = {}
    for name, (env, default) in SETTINGS.items():
        value = overrides.get(name)
        if value is None:
            value = os.environ.get(env, default)
        if name == "jobs" and str(value).strip().lower() == "auto":
            out[name] = "auto"
            continue
        try:
            number = int(str(value).strip())
        except ValueError:
            number = 0
        if number < 1:
            raise ValueError(f"grading setting {name} ({env}) must be a positive integer, got {value!r}")
        out[name] = number
    if out["jobs"] == "auto":
        cpus = os.cpu_count() or 1
        memory = _available_memory_mb()
        fit = cpus if memory is None else max(1, memory // (out["memory_mb"] + 1024))
        out["jobs"] = max(1, min(cpus, fit))
    return out
