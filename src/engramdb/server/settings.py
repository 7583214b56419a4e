"""The server's knobs: request limits and which parts of the service run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engramdb.errors import ConfigError
from engramdb.ingest import MAX_FILE_BYTES

__all__ = ["MAX_BODY_BYTES", "MAX_UPLOAD_BYTES", "STATIC_DIR", "ServerSettings"]

MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest JSON request body (8 MiB)."""
MAX_UPLOAD_BYTES = 8 * MAX_FILE_BYTES
"""The largest multipart upload, all files together (1 GiB)."""
STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The web UI shipped with the package."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """How the REST server limits requests and what it runs besides the API.

    Attributes:
        max_body_bytes: the largest request body but uploads (``413`` beyond).
        max_file_bytes: the largest uploaded file (``413`` beyond).
        max_upload_bytes: the largest multipart upload, every file together.
        static_dir: the web UI's folder, served at ``/`` when it exists (``None``: no UI).
        mcp: mount the MCP server (Streamable HTTP) at ``/mcp`` when it is installed.
        run_jobs: run the ingest job runner while the app is up.
    """

    max_body_bytes: int = MAX_BODY_BYTES
    max_file_bytes: int = MAX_FILE_BYTES
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    static_dir: Path | None = field(default=STATIC_DIR)
    mcp: bool = True
    run_jobs: bool = True

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_file_bytes", "max_upload_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"ServerSettings.{name} must be a positive integer, got {value!r}"
                )
