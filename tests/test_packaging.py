"""What skvae imports at module level must be a declared dependency: an import
that only some other package happens to bring breaks ``import skvae`` for users
with another version of it (narwhals came with scikit-learn only from 1.9)."""

import ast
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip(
    "tomllib", reason="reads pyproject.toml with tomllib, standard from Python 3.11"
)

ROOT = Path(__file__).resolve().parents[1]
# Import names whose distribution is named otherwise.
DISTRIBUTIONS = {"sklearn": "scikit-learn"}


def _declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        name = requirement.split(";")[0]
        for mark in "<>=!~[ ":
            name = name.split(mark)[0]
        names.add(name.strip().lower())
    return names


def _module_level_imports(path):
    """Top-level packages imported outside functions (optional extras are
    imported inside the functions that need them)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def test_every_module_level_import_is_a_declared_dependency():
    declared = _declared()
    third_party = {
        name
        for path in (ROOT / "skvae").glob("*.py")
        for name in _module_level_imports(path)
        if name not in sys.stdlib_module_names
    }
    assert third_party >= {"numpy", "torch", "sklearn"}  # the scan sees imports
    undeclared = {n for n in third_party if DISTRIBUTIONS.get(n, n) not in declared}
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"
