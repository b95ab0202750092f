"""The test servers: a free port, waiting for one, and one daphne process class for every test that needs it.

The browser and multiprocess tests (tests/conftest.py's `daphne_servers`), the fault tests
(tests/faults/servers.py) and scripts/serve's test start their daphne processes with
`DaphneServer`; each says only what differs (the environment, where the log goes, the command).
This module imports neither pytest nor Django, so the fault tests' scripts and bench/ use it too.
"""

import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# scripts/serve's default, as the settings' WEBSOCKET_MAX_MESSAGE_SIZE (this module runs without Django).
WEBSOCKET_MAX_MESSAGE_SIZE = 1048576


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_for_port(port: int, *, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Return once something listens on the port; raise if `process` exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process for port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


class DaphneServer:
    """One real daphne process on a free port: it can be killed or stopped, and started again on that port."""

    def __init__(
        self,
        env: dict,
        *,
        log_dir: Path = ROOT / "var",
        max_message_size: int = WEBSOCKET_MAX_MESSAGE_SIZE,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.env = env
        self.max_message_size = max_message_size
        self.process: subprocess.Popen | None = None
        self._log = None
        self.log_path = log_dir / f"daphne-{self.port}.log"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--websocket-max-message-size",
            str(self.max_message_size),
            "deskchat.asgi:application",
        ]

    def launch(self) -> "DaphneServer":
        """Start the process without waiting for it to listen (see `start`), so several import Django at once."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A restart adds to this server's log; a first start drops what an earlier run on this port left.
        self._log = open(self.log_path, "a" if self.process else "w")
        self.process = subprocess.Popen(
            self.command(), cwd=ROOT, env=dict(self.env), stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def wait(self) -> "DaphneServer":
        wait_for_port(self.port, process=self.process)
        return self

    def start(self) -> "DaphneServer":
        return self.launch().wait()

    def kill(self) -> None:
        """Kill -9, as a crash: no close frames, no cleanup."""
        if self.alive:
            self.process.kill()
            self.process.wait(10)
        self._close_log()

    def stop(self) -> None:
        """Terminate, as a deployment does; kill what does not exit within 5 s."""
        if self.alive:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._close_log()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_kib(self) -> int:
        """Return the process's resident memory (VmRSS) in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
