"""A throwaway PostgreSQL server for tests and benchmarks of the shared store.

Usable outside pytest::

    with TemporaryPostgres() as pg:
        url = pg.create_database("lut")          # postgresql://postgres@127.0.0.1:PORT/lut
        with LutStore(url) as store: ...

It runs the machine's own PostgreSQL binaries (``pg_config --bindir``, else the newest
``/usr/lib/postgresql/*/bin``): ``initdb`` into a private temporary directory and ``pg_ctl start``
on a free loopback port with trust authentication for local connections only. PostgreSQL
refuses to run as root, so as root both run as the ``postgres`` user. ``fast=True`` turns off
fsync for tests (crash safety of a throwaway cluster does not matter); benchmarks keep it on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["TemporaryPostgres", "postgres_bindir", "PostgresUnavailable"]

_START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (or no user to run them as)."""


def postgres_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for path in candidates:
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    """A PostgreSQL cluster in a temporary directory, stopped and deleted on exit.

    Args:
        fast: fsync and synchronous commit off (for tests).
        listen: The address the server listens on (and its URLs name).
        netns: Run the server inside this network namespace (``ip netns exec``; needs root), e.g. a test's
            own namespace with ``listen`` its address there.

    Raises:
        PostgresUnavailable: no server binaries, or running as root without a ``postgres`` user.
    """

    def __init__(self, fast: bool = True, listen: str = "127.0.0.1", netns: str | None = None) -> None:
        self.fast = fast
        self.listen = listen
        self.netns = netns
        self.port = 0
        self.root: Path | None = None

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, args: list[str]) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.netns:
            prefix = ["ip", "netns", "exec", self.netns, *prefix]
        return subprocess.run(prefix + args, capture_output=True, text=True, check=False, timeout=_START_TIMEOUT_S)

    def start(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise PostgresUnavailable("no PostgreSQL server binaries found (pg_config --bindir, /usr/lib/postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="lutnas-pg-"))
        if os.geteuid() == 0:
            try:
                shutil.chown(self.root, user="postgres")
            except LookupError as err:
                raise PostgresUnavailable("running as root but there is no 'postgres' user to run the server") from err
        data = self.root / "data"
        init = self._run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                          "--no-sync"])
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
        if self.listen not in ("127.0.0.1", "localhost"):
            # initdb trusts loopback only; let in the hosts on the server's own subnets (a test's private network)
            with open(data / "pg_hba.conf", "a", encoding="utf-8") as hba:
                hba.write("host all all samenet trust\n")
        self.port = _free_port()
        self._bindir = bindir
        self._launch()

    def _launch(self) -> None:
        assert self.root is not None
        options = f"-p {self.port} -k {self.root} -c listen_addresses={self.listen} -c max_connections=200"
        if self.fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        started = self._run([str(self._bindir / "pg_ctl"), "-D", str(self.root / "data"), "-l",
                             str(self.root / "server.log"), "-o", options, "-w", "-t", str(_START_TIMEOUT_S), "start"])
        if started.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace") if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()} {log[-500:]}")

    def pause(self) -> None:
        """Shut the server down cleanly (its clients are disconnected, committed rows kept); :meth:`resume` starts
        it again on the same port."""
        assert self.root is not None, "start() the server first"
        self._run([str(self._bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"])

    def resume(self) -> None:
        """Start a paused server again, on the same port and data."""
        assert self.root is not None, "start() the server first"
        self._launch()

    def restart(self, down_s: float = 0.0) -> None:
        """:meth:`pause`, wait ``down_s`` seconds, :meth:`resume`: a maintenance restart as clients see it."""
        self.pause()
        time.sleep(down_s)
        self.resume()

    def stop(self) -> None:
        if self.root is None:
            return
        if self.port:
            self._run([str(self._bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def url(self, database: str = "postgres") -> str:
        """``postgresql://postgres@LISTEN:PORT/DATABASE``."""
        return f"postgresql://postgres@{self.listen}:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (a copy of ``template`` when given) and return its URL."""
        self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending its connections first."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type] - names come from the caller, not from users
