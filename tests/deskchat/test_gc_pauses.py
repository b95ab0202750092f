"""The collector's pauses, which every socket of a daphne process waits through, reach the log."""

import gc
import logging
import os

import pytest

from deskchat import gc_pauses


@pytest.fixture
def watching():
    previous = gc_pauses.watch(0)
    yield gc_pauses.watch
    gc_pauses.watch(previous)  # as before the test (deskchat.asgi may have set it on import)


def test_a_pause_at_or_over_the_threshold_is_logged_with_its_generation_and_length(watching, caplog):
    """A full collection that takes at least the threshold is a warning naming generation 2 and its length."""
    watching(0.000_001)
    with caplog.at_level(logging.WARNING, logger="deskchat.gc"):
        gc.collect()

    pauses = [r.getMessage() for r in caplog.records if r.name == "deskchat.gc"]
    assert any(p.startswith("gc pause: generation 2, ") and " ms, " in p for p in pauses), pauses


def test_shorter_pauses_and_a_threshold_of_zero_log_nothing(watching, caplog):
    """Pauses under the threshold stay out of the log, and 0 takes the watcher off the collector."""
    with caplog.at_level(logging.WARNING, logger="deskchat.gc"):
        watching(60_000)
        gc.collect()
        watching(0)
        gc.collect()

    assert not [r for r in caplog.records if r.name == "deskchat.gc"]
    assert gc_pauses._on_collection not in gc.callbacks


def test_the_collections_of_shutdown_are_not_logged_to_closed_streams():
    """A process that exits with the watcher on prints no logging errors: it stops watching at exit."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import gc, logging, os, sys\n"
        "logging.basicConfig(stream=open(os.devnull, 'w'))\n"
        "from deskchat import gc_pauses\n"
        "gc_pauses.watch(0.000001)\n"
        "junk = []\n"
        "for _ in range(50_000):\n"
        "    cycle = []\n"
        "    cycle.append(cycle)\n"
        "    junk.append(cycle)\n"
        "logging.getLogger().handlers[0].stream.close()\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)

    assert run.returncode == 0, run.stderr
    assert "Logging error" not in run.stderr


@pytest.mark.parametrize(
    ("serve", "setting", "frozen"),
    [(True, "1", "most"), (False, "1", "none"), (True, "0", "none")],
    ids=["served", "imported", "turned-off"],
)
def test_a_daphne_process_freezes_what_it_loaded_and_nothing_else_does(serve, setting, frozen):
    """Once daphne's reactor runs, what was loaded is frozen; an import alone, or GC_FREEZE=0, freezes nothing."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import gc, os\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'deskchat.settings')\n"
        "import daphne.server\n"  # what daphne's command line imports first: it installs the reactor
        "import deskchat.asgi\n"
        + (
            "from twisted.internet import reactor\nreactor.callLater(0.3, reactor.stop)\nreactor.run()\n"
            if serve
            else ""
        )
        + "print(gc.get_freeze_count())\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SQLITE_PATH": str(root / "var" / "gc-freeze-test.sqlite3"), "GC_FREEZE": setting}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    run = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    count = int(run.stdout.strip().splitlines()[-1])
    assert count > 100_000 if frozen == "most" else count == 0
