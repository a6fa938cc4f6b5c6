"""The floors of the code (pyproject.toml [tool.importlinter], docs/design.md "Layers"), checked with
import-linter: the contracts hold on this checkout, and they catch an import that breaks them."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("tfx_pipeline", "components", "serving", "models")


def lint(root: str) -> subprocess.CompletedProcess:
    """lint-imports on the packages under `root` (its pyproject.toml), in a process whose sys.path
    starts there: a copy shadows this checkout's installed packages."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    env = {**os.environ, "PYTHONPATH": root, "COLUMNS": "200"}  # one line per contract
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_contracts_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.fixture
def copy(tmp_path):
    """The four packages and pyproject.toml, copied (code only)."""
    for package in PACKAGES:
        shutil.copytree(os.path.join(ROOT, package), tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.md", "configs", "Dockerfile"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path)
    return tmp_path


def add_import(path, line: str) -> None:
    with open(path, "a") as module:
        module.write(f"\n{line}\n")


@pytest.mark.parametrize("module, line, broken", [
    # the foundation reaching up into models/
    ("models/foundation/storage.py", "from models import artifacts", "Foundation"),
    # a floor reaching up, deferred inside a function (grimp sees those too)
    ("models/ease.py", "def f():\n    from components.ingest import splits", "Floors"),
    # components/ and serving/ stand beside each other: neither imports the other
    ("serving/catalog.py", "from components.push import lock", "Floors"),
    # a cycle inside one floor
    ("models/artifacts.py", "from models import feature_tables", "Acyclic"),
])
def test_a_broken_floor_is_caught(copy, module, line, broken):
    if broken == "Acyclic":  # a cycle needs feature_tables to import artifacts: check it does
        with open(copy / "models/feature_tables.py") as source:
            assert "from models import artifacts" in source.read()
    add_import(copy / module, line)
    result = lint(str(copy))
    assert result.returncode == 1, result.stdout
    broken_contracts = [row.split(":")[0] for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert broken in broken_contracts, result.stdout
