"""A real PostgreSQL server for tests and the bench: the Debian `postgresql-15` binaries, a
throw-away cluster in a temp folder, listening on a free loopback port (and a unix socket in that
folder, never /var/run), with the pgvector extension created in its `citeqa` database.

PostgreSQL refuses to run as root, so when the tests run as root the cluster is owned by, and the
server runs as, the `postgres` system user (created by the Debian package) through `runuser`.

`pg_server` is the pytest fixture (one server per test module); `PostgresServer` is what the
bench starts the same way. Missing binaries or a missing pgvector extension skip with the fix.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("CITEQA_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "citeqa"
INSTALL_HINT = "apt-get install -y postgresql-15 postgresql-server-dev-15 && scripts/install_pgvector.sh"


def missing() -> str | None:
    """Why a server cannot be started here, or None."""
    if not (PG_BIN / "initdb").is_file() or not (PG_BIN / "pg_ctl").is_file():
        return f"PostgreSQL binaries not found in {PG_BIN} ({INSTALL_HINT})"
    try:
        share = subprocess.run(
            [str(PG_BIN / "pg_config"), "--sharedir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        share = "/usr/share/postgresql/15"
    if not (Path(share) / "extension" / "vector.control").is_file():
        return f"the pgvector extension is not installed in {share}/extension ({INSTALL_HINT})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """One throw-away cluster. `start()` runs initdb, starts the server and creates the database
    and the `vector` extension; `stop()` stops it (the folder is the caller's)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    user: str = "citeqa"
    settings: dict[str, str] = field(default_factory=dict)  # extra postgresql.conf settings

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{DATABASE}"

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *cmd: str) -> None:
        done = subprocess.run([*self._as_owner(), *cmd], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}{done.stdout[-500:]}")

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            # The server user must reach its folder: open the path down to it for traversal.
            for parent in [self.workdir, *self.workdir.parents]:
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o711)
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
        if not (self.datadir / "PG_VERSION").exists():
            self._run(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.user,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            )
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.workdir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **self.settings,
        }
        opts = " ".join(f"-c {k}={v}" for k, v in options.items())
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.workdir / "postgres.log"),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        )
        self._wait()
        self._setup()

    def _wait(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.admin_dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _setup(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def new_database(self, name: str, *, vector: bool = True) -> str:
        """A fresh database on this server (its DSN), so tests do not see each other's tables."""
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        dsn = f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"
        if vector:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return dsn

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")


def start_server(settings: dict[str, str] | None = None) -> tuple[PostgresServer, tempfile.TemporaryDirectory[str]]:
    """A running server in a new temp folder (the bench's way in); stop it and clean the folder."""
    tmp = tempfile.TemporaryDirectory(prefix="citeqa-pg-")
    server = PostgresServer(Path(tmp.name), settings=settings or {})
    server.start()
    return server, tmp


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer]:
    why = missing()
    if why:
        pytest.skip(why)
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    server, tmp = start_server()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            tmp.cleanup()
