"""Schemathesis against the app's own OpenAPI schema: every response matches its documented
schema (status, content type, body, headers), no input makes a 5xx, schema-violating input is
refused, and every operation refuses a request without a key.

One check is left out: "every schema-valid request is accepted". Some valid-looking requests
are rightly refused by state or by rules a JSON Schema cannot state: a filter in the ``where``
language that does not parse (400 InvalidFilter), ``coverage`` before the store was
calibrated (400), integers beyond 64 bits in a body (422).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _server_support import HASH, bearer
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.checks import positive_data_acceptance  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402

from engramdb.server import ServerSettings, create_app  # noqa: E402
from engramdb.service import MemoryService  # noqa: E402

_FOLDER = tempfile.TemporaryDirectory(prefix="engramdb-fuzz-")
_SERVICE = MemoryService.open(Path(_FOLDER.name) / "store.db", embed=HASH)
_KEY = _SERVICE.keys.add("fuzz", ["fuzz", "other"]).key
_SERVICE.remember(_SERVICE.authenticate(_KEY), ["A first memory about the deploy freeze."])
_APP = create_app(_SERVICE, ServerSettings(mcp=False, run_jobs=False))
# The coverage phase (boundary cases, built at collection) costs more than the whole
# budget of this file on a small machine; fuzzing covers the same operations here.
_CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}})
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, config=_CONFIG)


@pytest.fixture(scope="module", autouse=True)
def _close_service() -> Iterator[None]:
    yield
    _SERVICE.close()
    _FOLDER.cleanup()


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_matches_its_schema(case: Any) -> None:
    if case.headers and "Authorization" in case.headers:  # a real key where one is sent
        case.headers["Authorization"] = bearer(_KEY)["Authorization"]
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
