"""`import engramdb` loads no model runtime, no server stack and no optional dependency."""

from __future__ import annotations

import subprocess
import sys

HEAVY = [
    "onnxruntime",
    "tokenizers",
    "torch",
    "httpx",
    "starlette",
    "uvicorn",
    "datasketch",
    "scipy",
    "selectolax",
]


def test_import_engramdb_is_light() -> None:
    code = f"import sys, engramdb, engramdb.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
