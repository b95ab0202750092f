"""/healthz and /readyz: cheap, unauthenticated, host-agnostic, and honest about what is down."""

import json
import subprocess
import sys

import pytest

from tests.accounts.test_settings import ROOT, environment
from tests.servers import free_port


@pytest.mark.django_db
def test_healthz_answers_without_session_host_check_or_redirect(client, settings):
    """A probe by IP address, over plain HTTP, behind SECURE_SSL, gets 200 and no cookie."""
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/healthz", HTTP_HOST="10.0.0.7")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies


@pytest.mark.django_db
def test_readyz_says_the_database_and_channel_layer_answer(client):
    response = client.get("/readyz", HTTP_HOST="10.0.0.7")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "channel_layer": "ok"}


@pytest.mark.django_db
def test_probes_reveal_nothing_and_take_no_writes(client, f):
    """No data in them: the same answer whoever asks; a POST is not a probe."""
    f.make_contact(username="carol")
    assert set(client.get("/readyz").json()) == {"status", "database", "channel_layer"}
    assert client.post("/healthz").status_code in (403, 404, 405)


def readiness_in_a_process(env: dict) -> tuple[int, dict]:
    code = (
        "import asyncio, json; from deskchat.health import readiness; "
        "status, checks = asyncio.run(readiness()); print(json.dumps([status, checks]))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    status, checks = json.loads(result.stdout.strip().splitlines()[-1])
    return status, checks


def test_readyz_is_503_when_the_database_cannot_be_opened(tmp_path):
    """The SQLite path is a directory: the database cannot be opened, so the process is not ready."""
    status, checks = readiness_in_a_process(environment(tmp_path, DEBUG="1", SQLITE_PATH=str(tmp_path)))
    assert status == 503
    assert checks == {"database": "unavailable", "channel_layer": "ok"}


def test_readyz_is_503_when_redis_does_not_answer(tmp_path):
    """A real Redis URL with nothing listening behind it."""
    env = environment(tmp_path, DEBUG="1", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    status, checks = readiness_in_a_process(env)
    assert status == 503
    assert checks == {"database": "ok", "channel_layer": "unavailable"}


@pytest.mark.django_db
def test_favicon_ico_leads_to_the_icon_and_the_admin_names_it(admin_client):
    response = admin_client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("/static/favicon.svg")
    page = admin_client.get("/admin/").content.decode()
    assert 'rel="icon"' in page and "favicon.svg" in page
