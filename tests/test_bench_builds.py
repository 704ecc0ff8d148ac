"""A benchmark's reference build runs its own code, not this tree's (bench/capacity.py).

``python -c`` and ``python -m`` put the working directory ahead of ``PYTHONPATH``: started from
this tree's root, as ``python bench/capacity.py`` is, a reference server imported this tree's
``waitroom``, and every reference row compared the tree with itself (bench/README.md,
"Session 17"). A stand-in build whose ``waitroom.cli`` says where it was imported from shows
which code a served process runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from capacity import Build, ServeProcess  # noqa: E402 (bench/ is not a package)

STAND_IN_CLI = """
import os, sys, time
from pathlib import Path

def main(argv):
    Path(os.environ["IMPORTED_FROM"]).write_text(__file__)
    print("Serving on http://127.0.0.1:1", flush=True)
    time.sleep(60)
    return 0
"""


@pytest.mark.parametrize("how", ["-c", "-m"])
def test_a_reference_server_started_from_this_tree_s_root_imports_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    reference = tmp_path / "reference"
    (reference / "waitroom").mkdir(parents=True)
    (reference / "waitroom" / "__init__.py").write_text("")
    cli = reference / "waitroom" / "cli.py"
    cli.write_text(STAND_IN_CLI + "\nif __name__ == '__main__':\n    main([])\n")
    imported_from = tmp_path / "imported-from"
    monkeypatch.setenv("IMPORTED_FROM", str(imported_from))
    monkeypatch.chdir(ROOT)  # where the benchmarks are run from
    if how == "-c":
        command = [sys.executable, "-c", "from waitroom.cli import main; main([])"]
    else:
        command = [sys.executable, "-m", "waitroom.cli"]
    with ServeProcess(
        command, Build("reference", reference), tmp_path / "serve.log", "http://x", "stand-in"
    ):
        assert Path(imported_from.read_text()).is_relative_to(reference)
