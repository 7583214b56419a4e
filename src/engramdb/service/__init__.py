"""The shared-memory service layer: scopes, keys, durable ingest jobs and
:class:`MemoryService`, whose verbs every adapter (REST, MCP, CLI) goes through.

No web dependency lives here; the ``server`` and ``mcp`` packages adapt it.
"""

from __future__ import annotations

from engramdb.ingest.moments import EARLIEST, LATEST, event_time
from engramdb.service._cluster import SERVICE_STORE, ClusterMemory, cluster_address
from engramdb.service.core import MemoryService, ServiceStats
from engramdb.service.jobs import Job, JobFile, JobQueue, JobState, Upload
from engramdb.service.keys import KEY_PREFIX, KeyInfo, KeyRing, NewKey
from engramdb.service.scope import Scope, host_name, is_loopback

__all__ = [
    "EARLIEST",
    "KEY_PREFIX",
    "LATEST",
    "SERVICE_STORE",
    "ClusterMemory",
    "Job",
    "JobFile",
    "JobQueue",
    "JobState",
    "KeyInfo",
    "KeyRing",
    "MemoryService",
    "NewKey",
    "Scope",
    "ServiceStats",
    "Upload",
    "cluster_address",
    "event_time",
    "host_name",
    "is_loopback",
]
