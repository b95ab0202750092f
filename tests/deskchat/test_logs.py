"""Log lines carry time, level and logger name; LOG_FORMAT=json gives one JSON object a line; nothing twice."""

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import daphne_server

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+ .+")


def get(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code


def served_log(extra_env: dict, *paths: str) -> list[str]:
    """Start a real daphne, ask for the paths, stop it, and return its log lines."""
    server = daphne_server(**extra_env).start()
    try:
        for path in paths:
            get(server.url + path)
        time.sleep(0.5)  # the access log is written after the response
    finally:
        server.stop()
    return [line for line in server.log_path.read_text().splitlines() if line.strip()]


@pytest.mark.django_db(transaction=True)
def test_text_lines_have_time_level_and_logger_and_none_is_written_twice():
    lines = served_log({"DEBUG": "1"}, "/no-such-page/")
    assert lines and all(LINE.match(line) for line in lines), lines
    not_found = [line for line in lines if "Not Found: /no-such-page/" in line]
    assert len(not_found) == 1, lines
    assert " WARNING django.request " in not_found[0]
    access = [line for line in lines if " daphne.access " in line]
    assert any('"GET /no-such-page/" 404' in line for line in access), lines
    assert len(lines) == len(set(lines)), "a line was logged twice"


@pytest.mark.django_db(transaction=True)
def test_json_format_writes_one_object_a_line():
    lines = served_log({"DEBUG": "1", "LOG_FORMAT": "json"}, "/healthz", "/no-such-page/")
    records = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
    assert [r["level"] for r in records if r["message"] == "Not Found: /no-such-page/"] == ["WARNING"]
    assert any(r["logger"] == "daphne.access" and '"GET /healthz" 200' in r["message"] for r in records)


def test_an_unknown_log_format_is_refused(tmp_path):
    from tests.accounts.test_settings import environment, manage

    result = manage(environment(tmp_path, DEBUG="1", LOG_FORMAT="xml"), "check")
    assert result.returncode != 0
    assert "LOG_FORMAT must be 'text' or 'json'" in result.stderr
