"""Private, disposable PostgreSQL and Redis servers for the fault tests, and daphne processes on them.

Fault tests stop, kill and restart their servers. Other people run tests against the machine's
own PostgreSQL (5432) and Redis (6379) at the same time, so these tests never touch those: each
test session starts its own PostgreSQL cluster in a temporary directory (migrated once into a
template database; each test gets a fresh copy), and each test its own redis-server.

The tests here are marked `postgres` and `redis`, so they run in the PostgreSQL + Redis pass of
scripts/test (CI's second pass) and are skipped in the embedded pass. Under CI=true a missing
redis-server or PostgreSQL binary fails the test instead of skipping it.
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
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, DaphneServer, free_port, missing, wait_for_port

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


def wait_for_tcp(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


class PrivateRedis:
    """A redis-server of our own: no persistence, killable and restartable on the same port."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.workdir), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_tcp(self.port)
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

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="deskchat-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = list(args)
        if self.as_root:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> None:
        if self.as_root:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run(pg_binary("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(pg_binary("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60",
                  "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run(pg_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as connection:
            connection.execute(sql)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def server_environment(database_url: str, redis_url: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update({
        "DJANGO_SETTINGS_MODULE": "deskchat.settings", "DEBUG": "0", "SECRET_KEY": SECRET,
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING",
        "DESKCHAT_TEST_DB_SUFFIX": "",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


class FaultServer(DaphneServer):
    """A daphne process on the private servers; it can be killed and started again on its port."""

    def __init__(self, env: dict):
        super().__init__()
        self.env = env
        self.log_path = ROOT / "var" / "faults" / f"daphne-{self.port}.log"

    def environment(self) -> dict:
        return dict(self.env)

    def start(self) -> "FaultServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
             "--websocket-max-message-size", "65536", "deskchat.asgi:application"],
            cwd=ROOT, env=self.environment(), stdout=self._log, stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.process, timeout=60)
        return self

    def kill(self) -> None:
        """Kill -9, as a crash: no close frames, no cleanup."""
        super().kill()
        if getattr(self, "_log", None):
            self._log.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


class FaultCluster:
    """One test's world: a fresh database on the private cluster, a private Redis, daphne processes."""

    def __init__(self, pg: PrivatePostgres, redis: PrivateRedis, dbname: str):
        self.pg = pg
        self.redis = redis
        self.dbname = dbname
        self.database_url = pg.url(dbname)
        self.servers: list[FaultServer] = []

    def env(self, **extra) -> dict:
        return server_environment(self.database_url, self.redis.url, **extra)

    def start_servers(self, count: int, **extra) -> list[FaultServer]:
        servers = [FaultServer(self.env(**extra)) for _ in range(count)]
        for server in servers:
            server.start()
        self.servers.extend(servers)
        return servers

    def ws_urls(self) -> list[str]:
        """The servers that are up now (a client reconnects to any of them)."""
        return [server.ws_url for server in self.servers if server.alive] or [self.servers[0].ws_url]

    def seed(self, **spec) -> dict:
        env = self.env()
        env.pop("REDIS_URL")  # the seed's own events have no listeners; don't need Redis for them
        result = subprocess.run([sys.executable, "-m", "tests.faults.seed", json.dumps(spec)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
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


def _need(binary: str) -> None:
    if not (pg_binary(binary) if binary in ("initdb", "pg_ctl") else shutil.which(binary)):
        missing(f"{binary} is not installed (the fault tests start private servers)")


@pytest.fixture(scope="session")
def private_postgres():
    """A private PostgreSQL cluster for this test session, with a migrated template database."""
    _need("initdb")
    _need("pg_ctl")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        missing("runuser is needed to run PostgreSQL as the postgres user")
    pg = PrivatePostgres()
    try:
        pg.init()
        pg.start()
        pg.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        env = server_environment(pg.url(TEMPLATE_DB), "")
        env.pop("REDIS_URL")
        result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def private_redis(tmp_path):
    """A private redis-server for one test."""
    _need("redis-server")
    redis = PrivateRedis(tmp_path).start()
    yield redis
    redis.kill()


@pytest.fixture
def cluster(private_postgres, private_redis):
    """A fresh database copied from the template, the private Redis, and a way to start servers."""
    if not private_postgres.data.exists():
        pytest.fail("the private PostgreSQL cluster is gone")
    private_postgres.start() if not _pg_up(private_postgres) else None
    dbname = f"faults_{os.getpid()}_{next(_databases)}"
    private_postgres.execute(f"CREATE DATABASE {dbname} TEMPLATE {TEMPLATE_DB}")
    world = FaultCluster(private_postgres, private_redis, dbname)
    yield world
    world.stop()
    if _pg_up(private_postgres):
        private_postgres.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


def _pg_up(pg: PrivatePostgres) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", pg.port), timeout=0.5).close()
        return True
    except OSError:
        return False
