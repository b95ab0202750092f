"""Private, disposable PostgreSQL and Redis, and daphne processes on them, for the fault tests and bench/soak.py.

Fault tests stop, kill and restart their servers. Other people run tests against the machine's
own PostgreSQL (5432) and Redis (6379) at the same time, so these never touch those: a run
starts its own PostgreSQL cluster in a temporary directory (migrated once into a template
database; each test gets a fresh copy), and its own redis-server.

The daphne processes are tests/servers.py's DaphneServer, as every other test's. This module
imports neither pytest nor Django, so a script can use it as well as conftest.py.
"""

import itertools
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.servers import DaphneServer, free_port, port_open, wait_for_port

ROOT = Path(__file__).resolve().parent.parent.parent
PG_BIN_DIRS = ["/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/lib/postgresql/16/bin", "/usr/bin"]
SECRET = "faults-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
TEMPLATE_DB = "deskchat_template"
_databases = itertools.count(1)

# The variables that select backends or could leak another run's settings into the servers.
SCRUBBED = ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH", "DJANGO_ALLOW_ASYNC_UNSAFE", "DB_POOL_MIN", "DB_POOL_MAX")


def pg_binary(name: str) -> str | None:
    for folder in PG_BIN_DIRS:
        path = Path(folder) / name
        if path.exists():
            return str(path)
    return shutil.which(name)


class PrivateRedis:
    """A redis-server of our own: no persistence, killable and restartable on the same port."""

    EXTRA_ARGS: tuple[str, ...] = ()

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
                "--loglevel",
                "warning",
                *self.EXTRA_ARGS,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)
        return self

    def kill(self) -> None:
        """Kill -9: every connection drops, every subscription is gone."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary directory, run as the postgres user."""

    PREFIX = "deskchat-faults-pg-"
    INITDB_ARGS: tuple[str, ...] = ("--no-sync",)
    # fsync=off is safe here: only the server process dies, never the machine. Commits stay
    # synchronous, or an immediate stop would forget transactions it had already confirmed.
    SETTINGS = "-c fsync=off -c full_page_writes=off -c max_connections=200"

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix=self.PREFIX))
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = list(args)
        if self.as_root:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=180)

    def init(self) -> None:
        if self.as_root:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run(
            pg_binary("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            *self.INITDB_ARGS,
            "--no-instructions",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {self.SETTINGS}"
        self._run(
            pg_binary("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run(pg_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def is_up(self) -> bool:
        return port_open(self.port)

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def execute(self, sql: str, dbname: str = "postgres") -> list | None:
        """Run one statement in autocommit; return its rows, if it has any."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as connection:
            cursor = connection.execute(sql)
            return cursor.fetchall() if cursor.description else None

    def make_template(self) -> None:
        """Create and migrate the template database every test's database is copied from."""
        self.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        env = server_environment(self.url(TEMPLATE_DB), "")
        env.pop("REDIS_URL")
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stdout + result.stderr)

    def new_database(self) -> str:
        """Copy the template into a fresh database and return its name."""
        dbname = f"faults_{os.getpid()}_{next(_databases)}"
        self.execute(f"CREATE DATABASE {dbname} TEMPLATE {TEMPLATE_DB}")
        return dbname

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def server_environment(database_url: str, redis_url: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "deskchat.settings",
            "DEBUG": "0",
            "SECRET_KEY": SECRET,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "LOG_LEVEL": "WARNING",
            "DESKCHAT_TEST_DB_SUFFIX": "",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class FaultCluster:
    """One test's world: a fresh database on the private cluster, a private Redis, daphne processes."""

    def __init__(self, pg: PrivatePostgres, redis: PrivateRedis, dbname: str):
        self.pg = pg
        self.redis = redis
        self.dbname = dbname
        self.database_url = pg.url(dbname)
        self.servers: list[DaphneServer] = []

    def env(self, **extra) -> dict:
        return server_environment(self.database_url, self.redis.url, **extra)

    def start_servers(self, count: int, **extra) -> list[DaphneServer]:
        servers = [DaphneServer(self.env(**extra), log_dir=ROOT / "var" / "faults") for _ in range(count)]
        self.servers.extend(servers)
        for server in servers:  # in parallel: each spends seconds importing Django
            server.launch()
        for server in servers:
            server.wait()
        return servers

    def ws_urls(self) -> list[str]:
        """The servers that are up now (a client reconnects to any of them)."""
        return [server.ws_url for server in self.servers if server.alive] or [self.servers[0].ws_url]

    def seed(self, **spec) -> dict:
        env = self.env()
        env.pop("REDIS_URL")  # the seed's own events have no listeners; don't need Redis for them
        result = subprocess.run(
            [sys.executable, "-m", "tests.faults.seed", json.dumps(spec)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-3000:])
        return json.loads(result.stdout.strip().splitlines()[-1])

    def query(self, sql: str, params=()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as connection:
            return list(connection.execute(sql, params).fetchall())

    def execute(self, sql: str) -> None:
        self.pg.execute(sql, self.dbname)

    def stored_seqs(self) -> dict[int, list[int]]:
        """Return each room's stored message seqs."""
        stored: dict[int, list[int]] = {}
        for room_id, seq in self.query("SELECT room_id, seq FROM chat_chatmessage ORDER BY room_id, seq"):
            stored.setdefault(room_id, []).append(seq)
        return stored

    def assert_rooms_consistent(self) -> None:
        """Every room's seqs run 1..last_seq without a gap, and no client_msg_id is stored twice."""
        bad = self.query(
            "SELECT r.id, r.last_seq, count(m.id), coalesce(max(m.seq), 0) FROM chat_chatroom r "
            "LEFT JOIN chat_chatmessage m ON m.room_id = r.id GROUP BY r.id, r.last_seq "
            "HAVING count(m.id) <> r.last_seq OR coalesce(max(m.seq), 0) <> r.last_seq"
        )
        assert bad == [], f"rooms whose seqs have gaps: {bad}"
        twice = self.query(
            "SELECT room_id, author_id, client_msg_id, count(*) FROM chat_chatmessage WHERE client_msg_id <> '' "
            "GROUP BY room_id, author_id, client_msg_id HAVING count(*) > 1"
        )
        assert twice == [], f"messages stored twice: {twice}"

    def stored_client_msg_ids(self) -> set[str]:
        return {row[0] for row in self.query("SELECT client_msg_id FROM chat_chatmessage WHERE client_msg_id <> ''")}

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def drop_database(self) -> None:
        if self.pg.is_up():
            self.pg.execute(f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)")
