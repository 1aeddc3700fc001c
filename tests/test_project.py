"""Project-level consistency: the two install paths agree, CI runs the README's test command."""

import re
import tomllib

import yaml


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {_name(r): r.replace(" ", "") for r in reqs}


def test_environment_yml_names_the_same_pinned_packages(repo):
    env = yaml.safe_load((repo / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert conda_python == ["python=3.11"]
    env_reqs = {_name(r): r.replace(" ", "") for r in pip_section}
    assert env_reqs == _pyproject(repo)


def test_every_top_level_pin_is_exact_and_in_constraints(repo):
    constraints = {
        _name(line): line.strip()
        for line in (repo / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for name, req in _pyproject(repo).items():
        assert "==" in req, f"{req} is not pinned exactly"
        assert constraints.get(name) == req, f"constraints.txt has {constraints.get(name)!r}, pyproject {req!r}"
    assert constraints["torch"] == "torch==2.13.0"


def test_ci_runs_the_readme_test_command(repo):
    readme = (repo / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    commands = [line.strip() for line in (repo / ".ci/run").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert commands[-1] == "make test"


def test_generated_notebooks_are_not_tracked(repo):
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "lectures", "solutions"], cwd=repo,
                             capture_output=True, text=True, check=True).stdout.split()
    assert not [t for t in tracked if t.endswith(".ipynb")]
