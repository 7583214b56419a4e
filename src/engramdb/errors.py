"""The engramdb exception tree.

Every error raised on purpose by engramdb derives from :class:`EngramError`, and also
from the natural built-in where there is one, so ``except ValueError`` keeps working::

    EngramError                          code  name
    ├── ConfigError(ValueError)           400   "Config"
    ├── InvalidInputError(ValueError)     400   "InvalidInput"      (bad query, k <= 0, bad text)
    │   └── IngestError                   400   "Ingest"            (unreadable, binary, bad JSON)
    ├── InvalidFilterError(ValueError)    400   "InvalidFilter"
    ├── DimensionMismatchError(ValueError) 400  "DimensionMismatch"
    ├── NotFoundError(KeyError)           404   "NotFound"          (memory id, namespace, job)
    ├── UnauthorizedError                 401   "Unauthorized"      (no key, or not a valid one)
    ├── ForbiddenError(PermissionError)   403   "Forbidden"         (a read-only key writing)
    ├── TooLargeError(ValueError)         413   "TooLarge"          (a request body over its limit)
    ├── StoreError                        500   "Store"
    │   ├── StoreClosedError              500   "StoreClosed"
    │   ├── ShardUnavailableError         503   "ShardUnavailable"  (a cluster's shard is down)
    │   ├── NotAStoreError                500   "NotAStore"         (file is not an engramdb store)
    │   ├── StoreNotFoundError(FileNotFoundError) 404 "StoreNotFound" (a read found no store file)
    │   ├── CorruptStoreError             500   "CorruptStore"      (SQLite reports a damaged file)
    │   └── MigrationError                500   "Migration"
    ├── IndexFormatError                  500   "IndexFormat"
    ├── ModelError                        500   "Model"             (model file missing or corrupt)
    └── MissingDependencyError(ImportError) 500 "MissingDependency"
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ConfigError",
    "CorruptStoreError",
    "DimensionMismatchError",
    "EngramError",
    "ForbiddenError",
    "IndexFormatError",
    "IngestError",
    "InvalidFilterError",
    "InvalidInputError",
    "MigrationError",
    "MissingDependencyError",
    "ModelError",
    "NotAStoreError",
    "NotFoundError",
    "ShardUnavailableError",
    "StoreClosedError",
    "StoreError",
    "StoreNotFoundError",
    "TooLargeError",
    "UnauthorizedError",
]


class EngramError(Exception):
    """Base of every error engramdb raises on purpose."""

    code: int = 500
    name: str = "Engram"

    def __str__(self) -> str:
        # KeyError quotes its message; keep messages readable for every subclass.
        return str(self.args[0]) if self.args else self.name


class ConfigError(EngramError, ValueError):
    """A configuration value is invalid."""

    code = 400
    name = "Config"


class InvalidInputError(EngramError, ValueError):
    """An argument is invalid: an empty query, ``k <= 0``, text that is not a string."""

    code = 400
    name = "InvalidInput"


class IngestError(InvalidInputError):
    """An input could not be loaded; nothing was written.

    Attributes:
        path: the file or input that failed, when there is one.
        line: the 1-based line number in that file, when known.
    """

    name = "Ingest"

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + message)
        self.path = str(path) if path is not None else None
        self.line = line


class InvalidFilterError(EngramError, ValueError):
    """A filter expression is malformed."""

    code = 400
    name = "InvalidFilter"


class DimensionMismatchError(EngramError, ValueError):
    """Vectors do not have the dimension the index or store expects."""

    code = 400
    name = "DimensionMismatch"


class NotFoundError(EngramError, KeyError):
    """A memory id or namespace does not exist."""

    code = 404
    name = "NotFound"


class UnauthorizedError(EngramError):
    """A service request came without a key, or with one that is unknown or revoked."""

    code = 401
    name = "Unauthorized"


class ForbiddenError(EngramError, PermissionError):
    """A valid key asked for something it may not do (a read-only key writing)."""

    code = 403
    name = "Forbidden"


class TooLargeError(EngramError, ValueError):
    """A request body or upload is over its size limit."""

    code = 413
    name = "TooLarge"


class StoreError(EngramError):
    """The store could not complete an operation."""

    name = "Store"


class ShardUnavailableError(StoreError):
    """Shards of a cluster did not answer in time (``shards`` names them): a recall that
    asked for a complete answer, or a write whose part for them is queued until they are
    back."""

    code = 503
    name = "ShardUnavailable"

    def __init__(self, message: str, *, shards: tuple[str, ...] = ()):
        super().__init__(message)
        self.shards = shards


class StoreClosedError(StoreError):
    """The store (or the Memory that owns it) was used after ``close()``."""

    name = "StoreClosed"


class NotAStoreError(StoreError):
    """The file exists but is not an engramdb store."""

    name = "NotAStore"

    def __init__(self, message: str, *, path: str | Path | None = None):
        super().__init__(message)
        self.path = str(path) if path is not None else None


class StoreNotFoundError(StoreError, FileNotFoundError):
    """A verb that only reads was pointed at a path where no store exists (nothing is created)."""

    code = 404
    name = "StoreNotFound"


class CorruptStoreError(StoreError):
    """SQLite reports the store file as damaged (a corrupt page, a truncated file)."""

    name = "CorruptStore"


class MigrationError(StoreError):
    """The store's schema is newer than this engramdb, or an applied migration changed."""

    name = "Migration"


class IndexFormatError(EngramError):
    """An index on disk has an unknown format version or is corrupt."""

    name = "IndexFormat"


class ModelError(EngramError):
    """A model file is missing or does not match its expected checksum."""

    name = "Model"


class MissingDependencyError(EngramError, ImportError):
    """An optional dependency is needed; the message names the extra to install.

    Attributes:
        module: the module that could not be imported.
        extra: the engramdb extra that provides it.
    """

    name = "MissingDependency"

    def __init__(self, module: str, extra: str):
        super().__init__(
            f'{module!r} is required for this feature: pip install "engramdb[{extra}]"'
        )
        self.module = module
        self.extra = extra
