"""Fixtures for the fault tests: a private PostgreSQL cluster per session, a private Redis per test.

The private servers live in tests/faults/servers.py (daphne: tests/servers.py), which bench/soak.py uses too. Other
people run tests against the machine's own PostgreSQL (5432) and Redis (6379) at the same time,
so these tests never touch those.

The tests here are marked `postgres` and `redis`, so they run in the PostgreSQL + Redis pass of
scripts/test (CI's second pass) and are skipped in the embedded pass. Under CI=true a missing
redis-server or PostgreSQL binary fails the test instead of skipping it.
"""

import os
import shutil

import pytest

from tests.conftest import missing
from tests.faults.servers import FaultCluster, PrivatePostgres, PrivateRedis, pg_binary


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
        pg.make_template()
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
    if not private_postgres.is_up():
        private_postgres.start()
    world = FaultCluster(private_postgres, private_redis, private_postgres.new_database())
    yield world
    world.stop()
    world.drop_database()
