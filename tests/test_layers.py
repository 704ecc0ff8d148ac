"""The import-linter contracts in pyproject.toml hold on this tree, and they are real: a copy of the
tree where a runtime module imports `actors` breaks the runtime contract (and the layers).

lint-imports runs as a subprocess in the tree it checks: it puts its working directory first on
``sys.path``, so a copy is analysed instead of the editable install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
RUN_TIMEOUT = 60.0
"""Seconds one lint-imports run may take (well under a second on this tree)."""
WIDE = "1000"
"""Terminal width for lint-imports' output, so no contract name is wrapped over two lines."""


def _config() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        config: dict[str, Any] = tomllib.load(file)["tool"]["importlinter"]
    return config


def _contract_name(contract_id: str) -> str:
    for contract in _config()["contracts"]:
        if contract["id"] == contract_id:
            return str(contract["name"])
    raise AssertionError(f"no contract {contract_id!r} in pyproject.toml")


def _lint(tree: Path) -> tuple[int, str]:
    """Run lint-imports in ``tree``; its exit code and output."""
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={**os.environ, "COLUMNS": WIDE, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def _verdicts(output: str) -> dict[str, str]:
    """Contract name -> KEPT or BROKEN, from the summary lines."""
    names = {str(contract["name"]) for contract in _config()["contracts"]}
    verdicts = {}
    for line in output.splitlines():
        name, _, verdict = line.strip().rpartition(" ")
        if name in names and verdict in ("KEPT", "BROKEN"):
            verdicts[name] = verdict
    assert verdicts.keys() == names, output
    return verdicts


def _not_python(folder: str, names: list[str]) -> list[str]:
    """What `shutil.copytree` leaves out: everything but folders and Python files."""
    kept = [
        n for n in names if n != "__pycache__" and (Path(folder, n).is_dir() or n.endswith(".py"))
    ]
    return [n for n in names if n not in kept]


def _copy_tree(target: Path) -> Path:
    """The project's packages (Python files only) and pyproject.toml, copied to ``target``."""
    for package in _config()["root_packages"]:
        shutil.copytree(ROOT / package, target / package, ignore=_not_python)
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def test_a_runtime_module_importing_actors_breaks_the_runtime_contract(tmp_path: Path) -> None:
    clean = _copy_tree(tmp_path / "clean")
    broken = _copy_tree(tmp_path / "broken")
    module = sorted(p for p in (broken / "runtime").glob("*.py") if p.name != "__init__.py")[0]
    with module.open("a") as file:
        file.write("\nimport actors  # a runtime module reaching up into the domain\n")
    runtime_alone = _contract_name("runtime-alone")
    layers = _contract_name("layers")

    _, output = _lint(clean)
    assert _verdicts(output)[runtime_alone] == "KEPT", output

    code, output = _lint(broken)
    assert code != 0, output
    verdicts = _verdicts(output)
    assert verdicts[runtime_alone] == "BROKEN", output
    assert verdicts[layers] == "BROKEN", output
    assert f"runtime.{module.stem} -> actors" in output  # the copy was analysed, not the install


def test_every_contract_holds_on_the_tree() -> None:
    code, output = _lint(ROOT)
    assert set(_verdicts(output).values()) == {"KEPT"}, output
    assert code == 0, output
