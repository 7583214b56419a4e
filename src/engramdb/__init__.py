"""engramdb: a long-term memory engine for LLM applications and agents.

Example:
    >>> from engramdb import Memory
    >>> with Memory.open(":memory:", embed={"model": "hash", "dim": 64}) as mem:
    ...     result = mem.add("The deploy freeze moved to Friday.", source="notes.md")
    ...     [hit.text for hit in mem.recall("deploy freeze", k=1)]
    ['The deploy freeze moved to Friday.']
"""

from __future__ import annotations

from engramdb._version import __version__
from engramdb.config import (
    ChunkConfig,
    EmbedConfig,
    EngineConfig,
    LexicalConfig,
    RecallConfig,
    RecognizeConfig,
    load_config,
)
from engramdb.engine import Memory
from engramdb.errors import (
    ConfigError,
    CorruptStoreError,
    DimensionMismatchError,
    EngramError,
    IndexFormatError,
    IngestError,
    InvalidFilterError,
    InvalidInputError,
    MigrationError,
    MissingDependencyError,
    ModelError,
    NotAStoreError,
    NotFoundError,
    ShardUnavailableError,
    StoreClosedError,
    StoreError,
    StoreNotFoundError,
)
from engramdb.ingest.turns import Turn
from engramdb.service import ClusterMemory
from engramdb.tools.hits import AddToolsResult, Demo, DemoHit, DemoHits, Tool, ToolHit, ToolHits
from engramdb.tools.rank import Fusion as ToolFusion
from engramdb.types import (
    AddResult,
    ChannelScore,
    GraphStats,
    History,
    Hit,
    Hits,
    ImportResult,
    IndexStats,
    LexicalStats,
    MemoryRecord,
    Position,
    Recognition,
    Record,
    Sighting,
    Stats,
    Supersession,
)

__all__ = [
    "AddResult",
    "AddToolsResult",
    "ChannelScore",
    "ChunkConfig",
    "ClusterMemory",
    "ConfigError",
    "CorruptStoreError",
    "Demo",
    "DemoHit",
    "DemoHits",
    "DimensionMismatchError",
    "EmbedConfig",
    "EngineConfig",
    "EngramError",
    "GraphStats",
    "History",
    "Hit",
    "Hits",
    "ImportResult",
    "IndexFormatError",
    "IndexStats",
    "IngestError",
    "InvalidFilterError",
    "InvalidInputError",
    "LexicalConfig",
    "LexicalStats",
    "Memory",
    "MemoryRecord",
    "MigrationError",
    "MissingDependencyError",
    "ModelError",
    "NotAStoreError",
    "NotFoundError",
    "Position",
    "RecallConfig",
    "Recognition",
    "RecognizeConfig",
    "Record",
    "ShardUnavailableError",
    "Sighting",
    "Stats",
    "StoreClosedError",
    "StoreError",
    "StoreNotFoundError",
    "Supersession",
    "Tool",
    "ToolFusion",
    "ToolHit",
    "ToolHits",
    "Turn",
    "__version__",
    "load_config",
]
