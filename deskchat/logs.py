"""Log lines: time, level and logger name on every line, as text or (LOG_FORMAT=json) one JSON object a line.

Everything goes through the root logger's one handler. Django's own default handler on the
`django` logger is removed (it printed every "Not Found" a second time), and daphne's access log,
which daphne writes to stdout in its own format, becomes records of the `daphne.access` logger.
"""

import logging

from daphne.access import AccessLogGenerator

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_FIELDS = {"asctime": "time", "levelname": "level", "name": "logger"}


def logging_config(*, level: str, json_lines: bool) -> dict:
    """Return the LOGGING setting: one console handler on the root, nothing printed twice."""
    formatter = (
        {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": TEXT_FORMAT, "rename_fields": JSON_FIELDS}
        if json_lines
        else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
        "root": {"handlers": ["console"], "level": level},
        # Django gives these loggers handlers of their own; propagating to the root is enough.
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("django", "django.server")},
    }


class LoggedAccessLog(AccessLogGenerator):
    """daphne's access log, written as log records instead of lines on stdout."""

    def __init__(self, stream=None):
        super().__init__(stream)
        self.logger = logging.getLogger("daphne.access")

    def write_entry(self, host, date, request, status=None, length=None, ident=None, user=None):
        self.logger.info('%s "%s" %s %s', host, request, status or "-", length or "-")


def route_daphne_access_log() -> None:
    """Make daphne's command line build LoggedAccessLog for its access log.

    daphne imports the application before it builds its access logger, and offers no option to
    send it through logging, so the name it uses is replaced here (as asgi.py does for failByDrop).
    """
    try:
        from daphne import cli
    except ImportError:  # served by something other than daphne
        return
    cli.AccessLogGenerator = LoggedAccessLog
