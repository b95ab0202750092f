"""Private servers for the benchmark: a PostgreSQL cluster, a redis-server, daphne processes.

The benchmark never touches the machine's shared PostgreSQL (5432) or Redis (6379): it starts
its own PostgreSQL cluster in a temporary directory and its own redis-server, each on a free
port, and throws both away at the end. The cluster keeps PostgreSQL's default durability
(fsync and synchronous_commit on), so a commit costs what it costs in production on this disk.
"""

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-not-for-production"
LOG_DIR = ROOT / "var" / "bench"
SCRUBBED = (
    "DATABASE_URL",
    "REDIS_URL",
    "SQLITE_PATH",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "DB_POOL_MIN",
    "DB_POOL_MAX",
    "DJANGO_SETTINGS_MODULE",
    "DEBUG",
    "REDIS_PREFIX",
)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# The test servers' helpers import neither pytest nor Django, so the benchmarks share them.
from tests.faults import servers as fault_servers  # noqa: E402
from tests.faults.servers import pg_binary as fault_pg_binary  # noqa: E402
from tests.servers import WEBSOCKET_MAX_MESSAGE_SIZE, free_port, wait_for_port  # noqa: E402


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pg_binary(name: str) -> str:
    """Find a PostgreSQL server binary, or say plainly that the benchmark needs one."""
    found = fault_pg_binary(name)
    if not found:
        raise RuntimeError(f"{name} is not installed; the benchmark needs a PostgreSQL server binary")
    return found


def proc_cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of one process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_runqueue_wait_seconds(pid: int) -> float:
    """Return how long the process's threads have waited for a CPU while runnable (schedstat).

    Compared with its CPU time over the same window, this says whether a slow server was busy
    or starved: on a shared machine a runnable thread can wait longer than it runs.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_pressure() -> str:
    """Return the kernel's CPU pressure (PSI): the share of time some task waited for a CPU."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
    except OSError:
        return "n/a"
    return " ".join(field.replace("avg", "") for field in some[1:4])


class PrivateRedis(fault_servers.PrivateRedis):
    """A redis-server of our own on a free port, in its own folder, for thousands of clients."""

    EXTRA_ARGS = ("--maxclients", "20000")

    def __init__(self):
        super().__init__(Path(tempfile.mkdtemp(prefix="deskchat-bench-redis-")))

    def flush(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], capture_output=True, check=False)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


class PrivatePostgres(fault_servers.PrivatePostgres):
    """The fault tests' throwaway cluster, with PostgreSQL's default durability (fsync and
    synchronous commit on), as in production, and room for the benchmark's connections."""

    PREFIX = "deskchat-bench-pg-"
    INITDB_ARGS = ()
    # Statements over 100 ms and checkpoints go to its log, kept as var/bench/postgres.log: a slow
    # commit (its WAL flush) shows there with its time, which tells a slow disk from slow code.
    SETTINGS = "-c max_connections=300 -c shared_buffers=256MB -c log_min_duration_statement=100 -c log_checkpoints=on"

    def destroy(self) -> None:
        self.stop()
        if self.log.exists():
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.log, LOG_DIR / "postgres.log")
        super().destroy()

    def launch(self) -> "PrivatePostgres":
        """Create the cluster and start it (saying plainly if PostgreSQL's binaries are missing)."""
        for name in ("initdb", "pg_ctl"):
            pg_binary(name)  # raises with a plain message if it is missing
        self.init()
        self.start()
        return self

    def create_database(self, name: str, template: str | None = None) -> str:
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return self.url(name)

    def postgres_pids(self) -> list[int]:
        """Every process of this cluster (postmaster and backends), for CPU accounting."""
        try:
            master = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        pids = [master]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == master:
                    pids.append(int(entry.name))
        return pids


# What deskchat/gc_pauses.py logs; every server of the benchmark logs pauses from this length up.
GC_PAUSE_RE = re.compile(r"gc pause: generation \d, ([\d.]+) ms")
GC_PAUSE_LOG_MS = "5"


def django_env(*, database_url: str = "", sqlite_path: str = "", redis_url: str = "", **extra) -> dict:
    """Environment for a DeskChat process (daphne, seed, pages) on the given backends."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "deskchat.settings",
            "DEBUG": "0",
            "SECRET_KEY": SECRET,
            "LOG_LEVEL": "WARNING",
            "DESKCHAT_TEST_DB_SUFFIX": "",
            "REDIS_PREFIX": "dc_bench",
            "GC_PAUSE_LOG_MS": GC_PAUSE_LOG_MS,
        }
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    if sqlite_path:
        env["SQLITE_PATH"] = sqlite_path
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Server:
    """One server process under test (daphne or the B0 relay), on a free port."""

    def __init__(self, name: str, command: list[str], env: dict):
        self.name = name
        self.port = free_port()
        self.command = [part.replace("{port}", str(self.port)) for part in command]
        self.env = env
        self.process = None
        self.log_path = LOG_DIR / f"{name}-{self.port}.log"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> "Server":
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=raise_fd_limit
        )
        wait_for_port(self.port, process=self.process, timeout=60)
        return self

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def runqueue_wait(self) -> float:
        return proc_runqueue_wait_seconds(self.pid)

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def gc_pauses_since(self, offset: int) -> list[float]:
        """Return the collector pauses (ms) the server logged after `offset` bytes of its log, longest first.

        Every server of the benchmark logs pauses of GC_PAUSE_LOG_MS (5 ms) or more (deskchat/gc_pauses.py).
        """
        if not self.log_path.exists():
            return []
        with open(self.log_path, errors="replace") as log:
            log.seek(offset)
            return sorted((float(ms) for ms in GC_PAUSE_RE.findall(log.read())), reverse=True)

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), as a crash or an out-of-memory kill would."""
        self.process.kill()
        self.process.wait(5)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:  # its figures are taken already: a server slow to close its sockets is killed
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if getattr(self, "_log", None):
            self._log.close()


def daphne(name: str, env: dict, app: str = "deskchat.asgi:application") -> Server:
    return Server(
        name,
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            "{port}",
            "--websocket-max-message-size",
            str(WEBSOCKET_MAX_MESSAGE_SIZE),
            app,
        ],
        env,
    )


def run_python(module: str, *args: str, env: dict, timeout: float = 600, prefix: tuple = ()) -> str:
    """Run `python -m module args…` in the checkout; return its stdout, fail loudly otherwise."""
    result = subprocess.run(
        [*prefix, sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{module} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout
