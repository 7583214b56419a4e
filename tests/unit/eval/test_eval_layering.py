"""The eval package is an adapter: it may use engramdb's public names and foundation only."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import engramdb.eval

ALLOWED = {"engramdb", "engramdb.types", "engramdb.errors", "engramdb.config", "engramdb._optional"}


def test_eval_imports_only_public_names_and_foundation() -> None:
    package = Path(engramdb.eval.__file__).parent
    offenders = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if (
                    name.startswith("engramdb")
                    and name not in ALLOWED
                    and not name.startswith("engramdb.eval")
                ):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_importing_eval_and_its_cli_loads_no_plotting_library() -> None:
    code = (
        "import sys, engramdb.eval, engramdb.eval.plots, engramdb.cli; "
        "print(sorted(m for m in ('matplotlib', 'rich.progress') if m in sys.modules))"
    )
    src = Path(engramdb.eval.__file__).parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(src)},
    )
    assert out.stdout.strip() == "[]"
