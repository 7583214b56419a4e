"""SPANN: a memory–disk vector index (heads in RAM, posting lists on disk) with SPFresh updates."""

from __future__ import annotations

from engramdb.ann.spann._config import SpannConfig
from engramdb.ann.spann._manifest import read_manifest
from engramdb.ann.spann.index import SpannIndex

__all__ = ["SpannConfig", "SpannIndex", "read_manifest"]
