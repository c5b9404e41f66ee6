"""environment.yml (conda, Binder) installs the same packages as pyproject.toml (pip, make)."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> str:
    name, spec = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", requirement).groups()
    return name.lower().replace("_", "-") + spec.replace(" ", "")


def pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for name, extra in project.get("optional-dependencies", {}).items():
        if name != "dev":              # test-only tools are not part of the course environment
            reqs += extra
    return {normalise(r) for r in reqs}


def environment_requirements() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml must have exactly one pip: section"
    return {normalise(r) for r in pip_lists[0] if not r.startswith("-e")}


def test_environment_yml_matches_pyproject():
    in_pyproject, in_env = pyproject_requirements(), environment_requirements()
    assert in_pyproject == in_env, (
        f"only in pyproject.toml: {sorted(in_pyproject - in_env)}; "
        f"only in environment.yml: {sorted(in_env - in_pyproject)}")


def test_environment_yml_installs_the_course_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip


def test_required_packages_are_declared():
    names = {re.match(r"[a-z0-9\-]+", r).group() for r in pyproject_requirements()}
    for package in ["jupyterlab", "torch", "torchvision", "numpy", "matplotlib", "nbgrader",
                    "ipywidgets", "pytest", "nbclient", "tqdm"]:
        assert package in names, f"{package} is missing from pyproject.toml"


def test_torch_is_not_pinned_to_one_release():
    torch_req = next(r for r in pyproject_requirements() if r.startswith("torch>") or r == "torch")
    assert "==" not in torch_req and "<" not in torch_req, torch_req
