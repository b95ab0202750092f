"""Shared fixtures: the backend in use, the desk, live daphne servers (tests/servers.py), and the browser.

The suite runs twice (scripts/test): on the embedded default and on PostgreSQL + Redis.
Tests marked `postgres` or `redis` run only in the second run. Under CI=true, a missing
service or browser fails the test instead of skipping it.
"""

import inspect
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from tests import factories
from tests.desk import desk  # noqa: F401 - the shared fixture
from tests.servers import DaphneServer

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true"}
USING_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
USING_REDIS = bool(os.environ.get("REDIS_URL"))


def missing(reason: str):
    """Fail under CI, skip elsewhere: a needed service or tool is not there."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if inspect.iscoroutinefunction(getattr(item, "function", None)):
            item.fixturenames.append("_close_async_connections")
        if "postgres" in item.keywords and not USING_POSTGRES:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: runs in the PostgreSQL + Redis pass"))
        if "redis" in item.keywords and not USING_REDIS:
            item.add_marker(pytest.mark.skip(reason="needs Redis: runs in the PostgreSQL + Redis pass"))


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Close the connections consumer threads left open, so the test database can be dropped."""
    yield
    if USING_POSTGRES:
        from django.db import connection

        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
async def _close_async_connections():
    """Close the test's event loop's own database connections (deskchat.adb) before the loop ends.

    Given to every async test (pytest_collection_modifyitems): an async fixture on a sync test
    would need an event loop of its own, which a browser test's Playwright already runs.
    """
    yield
    from deskchat import adb

    await adb.close()


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def f():
    """The factory module, so tests read `f.make_ticket(...)`."""
    return factories


def origin_of(url: str) -> str:
    """Return the page origin a browser would send to this ws:// or http:// URL (scheme, host, port)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


def daphne_environment(**extra_env) -> dict:
    """Return the environment of a daphne process that serves this session's test database."""
    db = settings.DATABASES["default"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "deskchat.settings", "DEBUG": "0", "DESKCHAT_ALLOW_DEV_KEY": "1"}
    # The browser fixture allows sync ORM calls in this process; the server must not inherit that,
    # so a query on its event loop fails a browser story as it would fail in production.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    if USING_POSTGRES:
        from urllib.parse import quote

        password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    else:
        env.pop("DATABASE_URL", None)
        env["SQLITE_PATH"] = str(db["NAME"])
    env.update({k: str(v) for k, v in extra_env.items()})
    return env


def daphne_server(**extra_env) -> DaphneServer:
    """Return a daphne process (not started) on the test database, with these settings."""
    return DaphneServer(daphne_environment(**extra_env), max_message_size=settings.WEBSOCKET_MAX_MESSAGE_SIZE)


@pytest.fixture
def daphne_servers(transactional_db):
    """Start real daphne processes on the test database: `start(count, **env)` returns them."""
    started = []

    def start(count: int = 1, **extra_env) -> list[DaphneServer]:
        servers = [daphne_server(**extra_env) for _ in range(count)]
        started.extend(servers)
        for server in servers:  # in parallel: each spends seconds importing Django
            server.launch()
        for server in servers:
            server.wait()
        return servers

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live_server_url(daphne_servers):
    """Start one daphne process and return its base URL."""
    return daphne_servers(1)[0].url


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "screenshots"


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium under Playwright, one per test module; never a downloaded browser.

    While Playwright's sync API is open, its event loop counts as running in the main thread, so
    an async test that runs later in the session (the consumer tests) would fail with "Cannot run
    the event loop while another loop is running". Closing the browser after each module, and
    undoing the async-unsafe switch, leaves the session as we found it.
    """
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        missing("Chromium is not installed (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        # Playwright's sync API runs its own event loop; Django must allow sync DB calls beside it.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield launched
            launched.close()


@pytest.fixture
def browser_passwords(settings):
    """Hash passwords with Django's default hasher, which the daphne process (not this one) checks.

    The suite's autouse fixture switches this process to the fast MD5 hasher, which the server
    process does not have configured, so users made with it could not sign in through a browser.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


@pytest.fixture
def screenshot(request):
    """Save a screenshot of a page into screenshots/<test name>/<step>.png (git ignores it)."""
    folder = SCREENSHOTS / request.node.name.replace("[", "_").replace("]", "")

    def take(page, step: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def login(page, base_url: str, username: str, password: str = factories.PASSWORD) -> None:
    """Sign in through the real login form."""
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


@pytest.fixture(autouse=True)
def _no_in_process_sweeper(settings):
    """Tests drive time-driven changes themselves; the daphne subprocesses still sweep."""
    settings.CHAT_SWEEPER_IN_PROCESS = False
