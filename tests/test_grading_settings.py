"""dgm.grading.settings: defaults, environment variables and flags, clear errors naming the setting."""

import os

import pytest

from dgm.grading import settings as settings_mod
from dgm.grading.settings import grade_settings


def test_grade_settings_defaults_environment_overrides(monkeypatch):
    for env, _ in settings_mod.SETTINGS.values():
        monkeypatch.delenv(env, raising=False)
    settings = grade_settings()
    assert (settings["cell_timeout"], settings["notebook_timeout"], settings["memory_mb"]) == (120, 900, 4096)
    assert 1 <= settings["jobs"] <= (os.cpu_count() or 1)
    monkeypatch.setenv("DGM_GRADE_CELL_TIMEOUT", "33")
    monkeypatch.setenv("DGM_GRADE_JOBS", "5")
    assert grade_settings()["cell_timeout"] == 33 and grade_settings()["jobs"] == 5
    assert grade_settings(cell_timeout=7, jobs=2)["cell_timeout"] == 7
    with pytest.raises(ValueError, match="memory_mb"):
        grade_settings(memory_mb=0)
    with pytest.raises(ValueError, match="DGM_GRADE_CELL_TIMEOUT"):
        grade_settings(cell_timeout="soon")
