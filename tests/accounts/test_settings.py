"""Settings from the environment: a clean `check --deploy` in production, and refusals that say why.

Each test starts `manage.py` in a fresh process, because settings are read once at import.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Variables a developer's or the test runner's shell may carry that would change the outcome.
# The browser fixture sets DJANGO_ALLOW_ASYNC_UNSAFE in this process, which the deploy check rejects.
SCRUBBED = ["DEBUG", "SECRET_KEY", "SECURE_SSL", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "DATABASE_URL", "REDIS_URL"]
SCRUBBED_PREFIXES = ("DJANGO_", "DESKCHAT_")


def environment(tmp_path, **overrides) -> dict:
    env = {
        key: value for key, value in os.environ.items() if key not in SCRUBBED and not key.startswith(SCRUBBED_PREFIXES)
    }
    env["SQLITE_PATH"] = str(tmp_path / "settings-test.sqlite3")
    env.update(overrides)
    return env


def production_environment(tmp_path, **overrides) -> dict:
    """What an operator sets: a long random key, TLS at the proxy, the real host name; DEBUG unset."""
    production = {
        "SECRET_KEY": secrets.token_urlsafe(45),  # 60 characters
        "SECURE_SSL": "1",
        "ALLOWED_HOSTS": "desk.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://desk.example.com",
    }
    return environment(tmp_path, **{**production, **overrides})


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def settings_seen(env: dict, *names: str) -> dict:
    """Return the named settings as a fresh process reads them from this environment."""
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{n: str(getattr(settings, n)) for n in {list(names)!r}}}))"
    )
    result = manage(env, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_secret_key_of_the_production_environment_is_60_characters(tmp_path):
    """The key the production tests use is long enough to satisfy Django's own check."""
    assert len(production_environment(tmp_path)["SECRET_KEY"]) == 60


def test_check_deploy_is_clean_in_production(tmp_path):
    """Configured for production, `manage.py check --deploy` reports no issues at all."""
    result = manage(production_environment(tmp_path), "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_check_deploy_is_clean_with_postgres_and_redis_urls(tmp_path):
    """Selecting PostgreSQL and Redis by URL keeps the deploy check clean (no connection is made)."""
    env = production_environment(
        tmp_path,
        DATABASE_URL="postgres://desk:pw@db.example.com:5432/desk",
        REDIS_URL="redis://cache.example.com:6379/0",
    )

    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_debug_is_off_unless_turned_on(tmp_path):
    """With DEBUG unset, production runs with DEBUG off and the secure cookie and HSTS settings on."""
    seen = settings_seen(
        production_environment(tmp_path),
        "DEBUG",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
    )

    assert seen == {
        "DEBUG": "False",
        "SESSION_COOKIE_SECURE": "True",
        "CSRF_COOKIE_SECURE": "True",
        "SECURE_SSL_REDIRECT": "True",
        "SECURE_HSTS_SECONDS": "31536000",
        "ALLOWED_HOSTS": "['desk.example.com']",
        "CSRF_TRUSTED_ORIGINS": "['https://desk.example.com']",
    }


def test_urls_select_the_backends(tmp_path):
    """DATABASE_URL picks PostgreSQL and REDIS_URL picks channels-redis; without them, SQLite and memory."""
    embedded = settings_seen(production_environment(tmp_path), "DATABASES", "CHANNEL_LAYERS")
    services = settings_seen(
        production_environment(
            tmp_path,
            DATABASE_URL="postgres://desk@db.example.com:5432/desk",
            REDIS_URL="redis://cache.example.com:6379/0",
        ),
        "DATABASES",
        "CHANNEL_LAYERS",
    )

    assert "sqlite3" in embedded["DATABASES"] and "InMemoryChannelLayer" in embedded["CHANNEL_LAYERS"]
    assert "postgresql" in services["DATABASES"] and "db.example.com" in services["DATABASES"]
    assert "channels_redis" in services["CHANNEL_LAYERS"] and "cache.example.com" in services["CHANNEL_LAYERS"]


def test_missing_secret_key_with_debug_off_refuses_to_start(tmp_path):
    """Without SECRET_KEY and with DEBUG off, startup fails with ImproperlyConfigured saying what to set."""
    env = production_environment(tmp_path)
    del env["SECRET_KEY"]

    result = manage(env, "check")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY is not set" in result.stderr


def test_empty_secret_key_with_debug_off_refuses_to_start(tmp_path):
    """An empty SECRET_KEY (as `SECRET_KEY=` in an env file leaves it) is as missing as an unset one."""
    result = manage(production_environment(tmp_path, SECRET_KEY=""), "check")

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_missing_secret_key_is_fine_in_development(tmp_path):
    """DEBUG=1 is the development mode, where a built-in key is acceptable."""
    result = manage(environment(tmp_path, DEBUG="1"), "check")

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_flag_refuses_debug(tmp_path):
    """With DESKCHAT_PRODUCTION=1, DEBUG=1 is refused at startup with a clear message."""
    result = manage(production_environment(tmp_path, DESKCHAT_PRODUCTION="1", DEBUG="1"), "check")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DESKCHAT_PRODUCTION is set: refusing to start with DEBUG on." in result.stderr


def test_production_flag_with_debug_off_starts(tmp_path):
    """DESKCHAT_PRODUCTION=1 with DEBUG off is the normal production start."""
    result = manage(production_environment(tmp_path, DESKCHAT_PRODUCTION="1"), "check", "--deploy")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_flag_refuses_the_development_key(tmp_path):
    """DESKCHAT_PRODUCTION=1 refuses the built-in key even when DESKCHAT_ALLOW_DEV_KEY lets tests use it."""
    env = production_environment(tmp_path, DESKCHAT_PRODUCTION="1", DESKCHAT_ALLOW_DEV_KEY="1")
    del env["SECRET_KEY"]

    result = manage(env, "check")

    assert result.returncode != 0
    assert "refusing to start with the development SECRET_KEY" in result.stderr


def test_a_sqlite_url_selects_sqlite_with_the_embedded_options(tmp_path):
    """DATABASE_URL=sqlite:///path is the embedded default's SQLite (WAL, IMMEDIATE) on that file; migrate works."""
    path = tmp_path / "from-url.sqlite3"
    env = environment(tmp_path, DEBUG="1", DATABASE_URL=f"sqlite:///{path}")
    seen = settings_seen(env, "DATABASES")["DATABASES"]
    assert "sqlite3" in seen and str(path) in seen and "'transaction_mode': 'IMMEDIATE'" in seen
    assert "journal_mode=WAL" in seen and "pool" not in seen
    result = manage(env, "migrate", "--noinput")
    assert result.returncode == 0, result.stderr
    code = "from django.db import connection; c = connection.cursor(); print(c.execute('PRAGMA journal_mode').fetchone()[0])"
    journal = manage(env, "shell", "-c", code)
    assert path.exists() and journal.stdout.strip().splitlines()[-1] == "wal", journal.stderr


def test_a_relative_sqlite_url_is_relative_to_the_project(tmp_path):
    """sqlite:///var/name.sqlite3 names a file under the project, whatever the working directory."""
    seen = settings_seen(environment(tmp_path, DEBUG="1", DATABASE_URL="sqlite:///var/url-test.sqlite3"), "DATABASES")
    assert str(ROOT / "var" / "url-test.sqlite3") in seen["DATABASES"]


def test_unusable_database_urls_are_refused_in_one_line(tmp_path):
    """An in-memory SQLite URL or an unsupported engine stops startup with one line saying what to write."""
    for url, words in [
        ("sqlite://", "in-memory SQLite"),
        ("sqlite://:memory:", "in-memory SQLite"),
        ("mysql://desk@db.example.com/desk", "mysql:// is not supported"),
    ]:
        result = manage(environment(tmp_path, DEBUG="1", DATABASE_URL=url), "check")
        assert result.returncode != 0
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("django.core.exceptions.ImproperlyConfigured: DATABASE_URL:") and words in last, last
        assert "TypeError" not in result.stderr


def test_the_login_settings_drive_the_axes_lockout(tmp_path):
    """LOGIN_FAILURE_LIMIT=0 turns axes off; TRUSTED_PROXY_HEADER must be a header name."""
    assert settings_seen(environment(tmp_path, DEBUG="1"), "AXES_ENABLED") == {"AXES_ENABLED": "True"}
    off = settings_seen(environment(tmp_path, DEBUG="1", LOGIN_FAILURE_LIMIT="0"), "AXES_ENABLED")
    assert off == {"AXES_ENABLED": "False"}
    result = manage(environment(tmp_path, DEBUG="1", TRUSTED_PROXY_HEADER="X-Real-IP: 1.2.3.4"), "check")
    assert result.returncode != 0 and "TRUSTED_PROXY_HEADER must be a header name" in result.stderr
