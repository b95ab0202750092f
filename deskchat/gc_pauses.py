"""Log the pauses of Python's cycle collector that a daphne process's sockets all wait through.

CPython 3.11's collector is not incremental: a full (generation 2) collection walks every
tracked object of the process, and every socket of the process waits while it runs. A socket
costs about 185 tracked objects, most of them daphne's, Twisted's and Channels', so the pause
grows with the sockets a process holds: about 50 ms at 200 chats and 600 ms at 5,000 idle
sockets on the benchmark machine (docs/benchmarks.md). An incremental collector for CPython,
which would cut such pauses, is still a draft (PEP 848); until one ships, the way to keep them
short is fewer sockets per process, and walking less of what never dies: a daphne process
freezes what it loaded at start (`freeze_what_is_loaded`: modules, settings, URL patterns, the
ORM's and the templates' metadata), which lives as long as the process and which every full
collection used to walk again.

Each pause of at least GC_PAUSE_LOG_MS is logged as a warning with its generation and length,
so an operator sees it beside a latency spike, and the benchmark reads the longest from the
server's log.
"""

import atexit
import gc
import logging
import time

from .loops import call_when_daphne_runs

logger = logging.getLogger("deskchat.gc")

_started_at: list[float] = []  # the start of the collection in progress
_threshold_ms = float("inf")


def _on_collection(phase: str, info: dict) -> None:
    if phase == "start":
        _started_at[:] = [time.perf_counter()]
        return
    if not _started_at:
        return
    pause_ms = (time.perf_counter() - _started_at.pop()) * 1000
    if pause_ms >= _threshold_ms:
        logger.warning(
            "gc pause: generation %s, %.1f ms, %s collected", info["generation"], pause_ms, info["collected"]
        )


def watch(threshold_ms: float) -> float:
    """Log every collector pause of at least threshold_ms from now on (0 or less: log none).

    Return the threshold it replaces (infinite when none was set).
    """
    global _threshold_ms
    previous, _threshold_ms = _threshold_ms, threshold_ms if threshold_ms > 0 else float("inf")
    if _threshold_ms == float("inf"):
        if _on_collection in gc.callbacks:
            gc.callbacks.remove(_on_collection)
    elif _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)
    return previous


def freeze_when_served(enabled: bool = True) -> None:
    """Freeze what is loaded once daphne's reactor runs: in a server process, not on an import.

    GC_FREEZE=0 turns this off (an A/B, or to let the collector free what was loaded at start).
    """
    if enabled:
        call_when_daphne_runs(freeze_what_is_loaded)


def freeze_what_is_loaded() -> int:
    """Move every object alive now out of the collector's sight (gc.freeze); return how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


# The collections of the interpreter's shutdown come after the log's streams are closed.
atexit.register(watch, 0)
