"""Where a cluster's shards and embedders run: Ray actors, or objects in this process.

Both backends give the coordinator the same two things: handles that take method calls
and return pending results, and :meth:`Backend.gather`, which waits for a set of calls up
to a timeout and reports, per shard, a result or the error that stands for it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engramdb._optional import require
from engramdb.config import EmbedConfig, EngineConfig
from engramdb.embed.registry import create_embedder
from engramdb.engine._shard import Shard
from engramdb.errors import EngramError, InvalidInputError
from engramdb.types import Matrix

__all__ = ["Backend", "EmbedderProcess", "Embedders", "LocalBackend", "RayBackend", "open_backend"]

logger = logging.getLogger(__name__)

_RESTARTS = 1000  # a shard actor is restarted (on its node) as often as it dies
_RETRIES = 3  # ... and a call that its death interrupted is sent again (every call is idempotent)


@dataclass(slots=True)
class _Done:
    """A call made in this process: already finished."""

    value: Any = None
    error: BaseException | None = None


class Embedders:
    """Embedder processes: documents are split among them, in order."""

    def __init__(self, handles: Sequence[Any], backend: Backend):
        self.handles = list(handles)
        self.backend = backend

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        parts = max(1, min(len(self.handles), len(texts)))
        size = -(-len(texts) // parts)
        calls = {
            str(i): self.backend.call(
                self.handles[i], "embed_documents", list(texts[i * size : (i + 1) * size])
            )
            for i in range(parts)
        }
        done, failed = self.backend.gather(calls, timeout=None)
        if failed:
            raise next(iter(failed.values()))
        return np.concatenate([done[str(i)] for i in range(parts)])


class EmbedderProcess:
    """One embedding model, loaded once (an embedder actor's body). Unless told otherwise
    it runs on one thread: an embedder process stands for one core, and throughput grows
    by adding processes (on this node or others)."""

    def __init__(self, config: EmbedConfig):
        self.embedder = create_embedder(dataclasses.replace(config, threads=config.threads or 1))

    def describe(self) -> tuple[str, int]:
        return self.embedder.model_id, self.embedder.dim

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        return self.embedder.embed_documents(list(texts))

    def pid(self) -> int:
        return os.getpid()


class Backend(Protocol):
    """How shards and embedders are started and called."""

    def start_shard(  # noqa: PLR0913 - what a shard is started with
        self,
        name: str,
        path: str,
        config: EngineConfig,
        model: tuple[str, int],
        node: str | None = None,
        moved: bool = False,
    ) -> Any:
        """A handle of a shard serving the store at ``path``, on ``node`` (the node that
        holds its store, as :meth:`pick_node` named it; ``None``: any). ``moved``: the
        node may have come back under a new id at the same address (the cluster is being
        opened, e.g. after Ray restarted)."""
        ...

    def pick_node(self, index: int) -> str | None:
        """A node for a new shard (``id@address``): the alive nodes in turn, so that a
        cluster's shards spread over its nodes (``None``: this process)."""
        ...

    def is_dead(self, error: BaseException) -> bool:
        """Whether a call failed because its shard is gone for good (not restarting)."""
        ...

    def start_embedders(self, count: int, config: EmbedConfig) -> list[Any]:
        """Handles of ``count`` embedder processes."""
        ...

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        """Call a method of a handle; returns a pending call."""
        ...

    def gather(
        self, calls: Mapping[str, Any], timeout: float | None
    ) -> tuple[dict[str, Any], dict[str, BaseException]]:
        """Wait for the calls (``{key: call}``) up to ``timeout`` seconds: their results,
        and the keys that failed or did not answer in time, with the error of each."""
        ...

    def stop(self, handle: Any) -> None:
        """Stop a shard or embedder (its store stays on disk)."""
        ...

    def shutdown(self) -> None:
        """Release what the backend started."""
        ...


class LocalBackend:
    """Shards as objects in this process (a cluster on one machine without Ray: for
    tests and for trying the cluster's behaviour)."""

    def start_shard(  # noqa: PLR0913 - what a shard is started with
        self,
        name: str,
        path: str,
        config: EngineConfig,
        model: tuple[str, int],
        node: str | None = None,
        moved: bool = False,
    ) -> Any:
        return Shard(path, config, *model)

    def pick_node(self, index: int) -> str | None:
        return None

    def is_dead(self, error: BaseException) -> bool:
        return False

    def start_embedders(self, count: int, config: EmbedConfig) -> list[Any]:
        return [EmbedderProcess(config) for _ in range(count)]

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        try:
            return _Done(value=getattr(handle, method)(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by gather
            return _Done(error=exc)

    def gather(
        self, calls: Mapping[str, Any], timeout: float | None
    ) -> tuple[dict[str, Any], dict[str, BaseException]]:
        done: dict[str, Any] = {}
        failed: dict[str, BaseException] = {}
        for key, call in calls.items():
            if call.error is not None:
                failed[key] = call.error
            else:
                done[key] = call.value
        return done, failed

    def stop(self, handle: Any) -> None:
        if isinstance(handle, Shard):
            handle.close()

    def shutdown(self) -> None:
        pass


class RayBackend:
    """Shards and embedders as Ray actors.

    A shard actor is placed on the node that holds its store (the node it first ran on,
    kept in the catalog by the coordinator), restarted there when it dies, and calls that
    its death interrupted are sent again; every shard call is idempotent, so a retried
    write is applied once.
    """

    def __init__(self, address: str | None, *, namespace: str = "engramdb"):
        self.ray = require("ray", extra="ray")
        if not self.ray.is_initialized():
            self.ray.init(
                address=address,
                namespace=namespace,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
                ignore_reinit_error=True,
            )
        self._shard_cls = self.ray.remote(
            num_cpus=0, max_restarts=_RESTARTS, max_task_retries=_RETRIES
        )(Shard)
        self._embedder_cls = self.ray.remote(num_cpus=1)(EmbedderProcess)

    def start_shard(  # noqa: PLR0913 - what a shard is started with
        self,
        name: str,
        path: str,
        config: EngineConfig,
        model: tuple[str, int],
        node: str | None = None,
        moved: bool = False,
    ) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        strategy: Any = None
        if node is not None:  # a shard stays on the node whose disk holds its store
            target = self._alive(node) if moved else node.partition("@")[0]
            strategy = NodeAffinitySchedulingStrategy(node_id=target, soft=False)
        return self._shard_cls.options(scheduling_strategy=strategy).remote(path, config, *model)

    def _alive(self, node: str) -> str:
        """The node id to place a shard on: the recorded node (``id@address``) when it is
        alive, else an alive node at the same address (Ray restarted on that machine),
        else the recorded id (the shard then stays down until that node is back)."""
        node_id, _, address = node.partition("@")
        alive = [n for n in self.ray.nodes() if n.get("Alive")]
        if any(n["NodeID"] == node_id for n in alive):
            return node_id
        for n in alive:
            if address and n.get("NodeManagerAddress") == address:
                return str(n["NodeID"])
        return node_id

    def pick_node(self, index: int) -> str | None:
        alive = sorted(
            (n for n in self.ray.nodes() if n.get("Alive")), key=lambda n: str(n["NodeID"])
        )
        if not alive:
            return None
        chosen = alive[index % len(alive)]
        return f"{chosen['NodeID']}@{chosen.get('NodeManagerAddress', '')}"

    def is_dead(self, error: BaseException) -> bool:
        exceptions = self.ray.exceptions
        return isinstance(error, exceptions.ActorDiedError | exceptions.ActorUnschedulableError)

    def start_embedders(self, count: int, config: EmbedConfig) -> list[Any]:
        return [self._embedder_cls.remote(config) for _ in range(count)]

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return getattr(handle, method).remote(*args)

    def gather(
        self, calls: Mapping[str, Any], timeout: float | None
    ) -> tuple[dict[str, Any], dict[str, BaseException]]:
        ray = self.ray
        keys = list(calls)
        refs = [calls[k] for k in keys]
        deadline = None if timeout is None else time.monotonic() + timeout
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout, fetch_local=True)
        ready_set = set(ready)
        done: dict[str, Any] = {}
        failed: dict[str, BaseException] = {}
        for key, ref in zip(keys, refs, strict=True):
            if ref not in ready_set:
                failed[key] = TimeoutError(f"no answer within {timeout:g} s")
                ray.cancel(ref, force=False)
                continue
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                done[key] = ray.get(ref, timeout=left)
            except EngramError as exc:
                failed[key] = exc
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                failed[key] = cause if isinstance(cause, EngramError) else exc
            except Exception as exc:  # noqa: BLE001 - an actor or node died, or a timeout
                failed[key] = exc
        return done, failed

    def stop(self, handle: Any) -> None:
        self.ray.kill(handle, no_restart=True)

    def shutdown(self) -> None:
        pass  # the Ray instance belongs to whoever started it (ray.shutdown ends a local one)


def open_backend(address: str | None, backend: str) -> Backend:
    """The backend named ``backend`` (``"ray"`` or ``"local"``).

    Raises:
        InvalidInputError: an unknown backend.
        MissingDependencyError: Ray is not installed (``pip install "engramdb[ray]"``).
    """
    if backend == "local":
        return LocalBackend()
    if backend == "ray":
        return RayBackend(address)
    raise InvalidInputError(f"unknown cluster backend {backend!r}; valid: ray, local")
