"""environment.yml and pyproject.toml name the same dependencies; the notebooks are well formed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {r.replace(" ", "") for r in reqs}


def _environment_requirements() -> set[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\s*- pip:\s*$", line))
    reqs = set()
    for line in lines[start + 1:]:
        m = re.match(r"\s+- (.+?)\s*$", line)
        if not m:
            break
        if not m.group(1).startswith("-e"):
            reqs.add(m.group(1).replace(" ", ""))
    return reqs


def test_environment_yml_matches_pyproject():
    py, env = _pyproject_requirements(), _environment_requirements()
    assert py == env, f"only in pyproject: {sorted(py - env)}; only in environment.yml: {sorted(env - py)}"


def test_environment_yml_installs_the_project_with_tests():
    text = (ROOT / "environment.yml").read_text()
    assert "- -e .[test]" in text and "python=3.11" in text


def test_requirements_do_not_ask_for_torch_newer_than_this_machine_has():
    """torch/torchvision: the registry's versions (2.14.1 / 0.29.1) satisfy the requirement, a newer
    release does not (the course must not pull one in), and the installed versions satisfy it."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    reqs = {Requirement(r).name: Requirement(r) for r in _pyproject_requirements()}
    for name, registry, newer in (("torch", "2.14.1", "2.15.0"), ("torchvision", "0.29.1", "0.30.0")):
        spec = reqs[name].specifier
        assert spec.contains(registry), f"{name}: {spec} rejects the registry's {registry}"
        assert not spec.contains(newer), f"{name}: {spec} would accept {newer}; cap it at {registry}"
        assert spec.contains(version(name).split("+")[0]), f"installed {name} {version(name)} not in {spec}"
