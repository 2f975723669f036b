"""The house's floors: the import-linter contracts of pyproject.toml hold for the code, and
they do catch an import that climbs back up (checked on a copy with one planted)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(tree: Path) -> subprocess.CompletedProcess:
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "mirror", tmp_path / "mirror", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_code_keeps_every_contract(tmp_path):
    result = lint(copy_of_the_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def plant(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_an_import_that_climbs_a_floor_breaks_the_layers(tmp_path):
    tree = copy_of_the_package(tmp_path)
    plant(tree, "mirror.env.params", "from mirror.runs.config import Config  # a library module reading the run config")
    result = lint(tree)
    assert result.returncode != 0
    assert "1 kept, 1 broken" in result.stdout and "mirror.env.params -> mirror.runs.config" in result.stdout


def test_rl_and_train_are_side_by_side(tmp_path):
    tree = copy_of_the_package(tmp_path)
    plant(tree, "mirror.rl.turns", "import mirror.train.loop")
    result = lint(tree)
    assert result.returncode != 0 and "mirror.rl.turns -> mirror.train.loop" in result.stdout


def test_the_library_may_not_plot(tmp_path):
    tree = copy_of_the_package(tmp_path)
    plant(tree, "mirror.analysis.cmni", "import matplotlib")
    result = lint(tree)
    assert result.returncode != 0 and "mirror.analysis.cmni -> matplotlib" in result.stdout
