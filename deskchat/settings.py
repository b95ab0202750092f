"""DeskChat settings, read from the environment.

Two modes:
- Embedded default (no DATABASE_URL, no REDIS_URL): a SQLite file and the in-memory channel
  layer in one process. Zero setup; what `scripts/run` starts.
- Production: DATABASE_URL=postgres://… selects PostgreSQL and REDIS_URL=redis://… selects
  channels-redis, so several daphne processes can share rooms and queues.
"""

import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from deskchat.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    """Read a yes/no environment variable."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable."""
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_float(name: str, default: float) -> float:
    """Read a decimal environment variable."""
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


def env_list(name: str, default: str = "") -> list[str]:
    """Read a comma-separated environment variable."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
INSECURE_DEV_KEY = "django-insecure-deskchat-development-only"
# An empty value (as `SECRET_KEY=` in an env file leaves it) counts as unset.
SECRET_KEY = os.environ.get("SECRET_KEY") or INSECURE_DEV_KEY
if not DEBUG and SECRET_KEY == INSECURE_DEV_KEY and not env_bool("DESKCHAT_ALLOW_DEV_KEY"):
    raise ImproperlyConfigured("SECRET_KEY is not set. Set SECRET_KEY in the environment, or DEBUG=1 for development.")
if env_bool("DESKCHAT_PRODUCTION"):
    if DEBUG:
        raise ImproperlyConfigured("DESKCHAT_PRODUCTION is set: refusing to start with DEBUG on.")
    if SECRET_KEY == INSECURE_DEV_KEY:
        raise ImproperlyConfigured("DESKCHAT_PRODUCTION is set: refusing to start with the development SECRET_KEY.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "django_htmx",
    "template_partials",
    "accounts",
    "tickets",
    "chat",
]

MIDDLEWARE = [
    "deskchat.health.health_probes",  # first: probes skip host checks, sessions and redirects
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "deskchat.middleware.ContentSecurityPolicyMiddleware",
    "deskchat.middleware.TimeZoneMiddleware",
    # Last, so it turns any sign-in axes refused (portal, admin, any later form) into the 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "deskchat.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "deskchat.context_processors.deskchat",
                "chat.context_processors.chat_dock",
            ],
            # One way to write a moment, on every template without a {% load %} (deskchat/timefmt.py).
            "builtins": ["deskchat.timefmt"],
        },
    },
]

ASGI_APPLICATION = "deskchat.asgi.application"
WSGI_APPLICATION = None

# --- Database -------------------------------------------------------------------------------
SQLITE_PATH = Path(os.environ.get("SQLITE_PATH", BASE_DIR / "var" / "deskchat.sqlite3"))
DATABASE_URL = os.environ.get("DATABASE_URL", "")
# Lets several test runs share one machine, each with its own test database.
TEST_DB_SUFFIX = os.environ.get("DESKCHAT_TEST_DB_SUFFIX", "")


def sqlite_database(path: Path) -> dict:
    """Return the SQLite settings of the embedded default, for the file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # IMMEDIATE takes the write lock when a transaction starts, so concurrent writers queue
        # instead of failing with "database is locked" halfway through; WAL lets readers go on.
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # Kept open: Channels closes old connections around every database call, and opening a
        # SQLite file (and running the PRAGMAs above) each time took most of the embedded
        # server's database thread (docs/benchmarks.md). A broken one is replaced (health checks).
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
        # A file, not memory, so a test server in another process sees the test database.
        "TEST": {"NAME": str(path.with_name(f"test-deskchat{TEST_DB_SUFFIX}.sqlite3"))},
    }


def prepared_statements(threshold: int) -> dict:
    """Return the OPTIONS that let psycopg prepare a statement run `threshold` times on a connection (0: never).

    Planning a select_related join took PostgreSQL 3 to 4 ms on every call, longer than running
    it; prepared, each connection plans it once (docs/benchmarks.md). Prepared statements need
    server-side parameter binding, and a pooler in transaction mode (PgBouncer before 1.21) that
    does not track them needs DB_PREPARE_THRESHOLD=0.
    """
    if threshold <= 0:
        return {}
    return {"server_side_binding": True, "prepare_threshold": threshold}


def database_from_url(url: str) -> dict:
    """Return the database a DATABASE_URL names: PostgreSQL with a pool, or a SQLite file."""
    database = dj_database_url.parse(url, conn_max_age=0)
    engine = database["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        if database["NAME"] in ("", ":memory:"):
            raise ImproperlyConfigured(
                "DATABASE_URL: an in-memory SQLite database is not shared between threads or processes; "
                "name a file, as in sqlite:///var/deskchat.sqlite3 (relative) or sqlite:////srv/desk.db (absolute)."
            )
        path = Path(database["NAME"])  # sqlite:///var/x.sqlite3 is relative to the project, like SQLITE_PATH's default
        return sqlite_database(path if path.is_absolute() else BASE_DIR / path)
    if engine != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL: {url.split(':', 1)[0]}:// is not supported; use postgres://… or sqlite:///path."
        )
    # Under ASGI, Django's persistent connections are not reused across requests, so connections
    # come from a psycopg pool instead (CONN_MAX_AGE must then be 0).
    database["OPTIONS"] = {
        "pool": {"min_size": env_int("DB_POOL_MIN", 2), "max_size": env_int("DB_POOL_MAX", 20), "timeout": 10},
        **prepared_statements(env_int("DB_PREPARE_THRESHOLD", 5)),
    }
    database["TEST"] = {"NAME": f"test_{database['NAME']}{TEST_DB_SUFFIX}"}
    return database


# Each process's own async connections for the one-statement hot paths on PostgreSQL (deskchat/adb.py).
DB_ASYNC_POOL_MAX = env_int("DB_ASYNC_POOL_MAX", 8)

DATABASES = {"default": database_from_url(DATABASE_URL) if DATABASE_URL else sqlite_database(SQLITE_PATH)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer --------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    # The pub/sub layer held 1,000 msg/s with nothing lost where the list-based layer dropped
    # messages at its channel capacity (docs/benchmarks.md). Either way the database is the truth.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": os.environ.get("REDIS_PREFIX", "deskchat")},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# AxesBackend first: it refuses a locked-out account before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
# Django's own pages (the admin) write moments in DeskChat's one format (deskchat/formats/).
FORMAT_MODULE_PATH = ["deskchat.formats"]
# English only, so no translation machinery: Django's own advice for a project that does not
# translate, and with it on, localising every number a page renders (ids, counts) asked the
# translation machinery for the language each time: a sixth of the HUD page's time.
USE_I18N = False
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "var" / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve straight from the finders when collectstatic has not run (tests, first run).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security -------------------------------------------------------------------------------
SECURE_SSL = env_bool("SECURE_SSL", False)  # set when a TLS-terminating proxy is in front
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_SSL else None
SECURE_SSL_REDIRECT = SECURE_SSL
SESSION_COOKIE_SECURE = SECURE_SSL
CSRF_COOKIE_SECURE = SECURE_SSL
SECURE_HSTS_SECONDS = 31536000 if SECURE_SSL else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_SSL
SECURE_HSTS_PRELOAD = SECURE_SSL
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'text' or 'json', not {LOG_FORMAT!r}.")
LOGGING = logging_config(level=os.environ.get("LOG_LEVEL", "INFO"), json_lines=LOG_FORMAT == "json")

# --- DeskChat -------------------------------------------------------------------------------
NOTE_MAX_LENGTH = env_int("NOTE_MAX_LENGTH", 10_000)
CHAT_MESSAGE_MAX_LENGTH = env_int("CHAT_MESSAGE_MAX_LENGTH", 4_000)
# daphne's --websocket-max-message-size (scripts/serve passes the same variable). Its websocket
# layer applies it to what the server sends too, so fragments are cut to fit a quarter of it.
WEBSOCKET_MAX_MESSAGE_SIZE = env_int("WEBSOCKET_MAX_MESSAGE_SIZE", 1_048_576)
CHAT_PICKUP_TIMEOUT_SECONDS = env_int("CHAT_PICKUP_TIMEOUT_SECONDS", 300)
CHAT_OFFER_WINDOW_SECONDS = env_int("CHAT_OFFER_WINDOW_SECONDS", 15)
CHAT_DEFAULT_MAX_CONCURRENT = env_int("CHAT_DEFAULT_MAX_CONCURRENT", 3)
CHAT_PRESENCE_TIMEOUT_SECONDS = env_int("CHAT_PRESENCE_TIMEOUT_SECONDS", 90)
CHAT_QUEUE_ALERT_SECONDS = env_int("CHAT_QUEUE_ALERT_SECONDS", 30)
CHAT_SWEEP_INTERVAL_SECONDS = env_float("CHAT_SWEEP_INTERVAL_SECONDS", 1.0)
# daphne logs every pause of Python's cycle collector this long or longer (0: none); see deskchat/gc_pauses.py.
GC_PAUSE_LOG_MS = env_float("GC_PAUSE_LOG_MS", 100.0)
# A daphne process hides what it loaded at start from the cycle collector (deskchat/gc_pauses.py).
GC_FREEZE = env_bool("GC_FREEZE", True)
# Per connection: a burst of this many frames, refilled at this many per second.
CHAT_RATE_BURST = env_int("CHAT_RATE_BURST", 20)
CHAT_RATE_PER_SECOND = env_float("CHAT_RATE_PER_SECOND", 5.0)
# Per connection: frames accepted but not yet handled; past this, new ones are refused on arrival.
CHAT_FRAME_BACKLOG = env_int("CHAT_FRAME_BACKLOG", 8)
# Per process: past this many accepted frames not yet finished, sends are refused as `busy`.
CHAT_PROCESS_BACKLOG = env_int("CHAT_PROCESS_BACKLOG", 200)
# Per process: websocket handshakes worked on at once; more wait in line (about 3 s of connects), and past
# that one is closed with 4503 before its session is read, saying when to come back (deskchat/admission.py;
# 0: no limit).
CHAT_CONNECTS_IN_PROGRESS = env_int("CHAT_CONNECTS_IN_PROGRESS", 32)
# Per process: read positions the sockets report are written together, this often (one commit each time).
CHAT_READ_FLUSH_SECONDS = env_float("CHAT_READ_FLUSH_SECONDS", 0.5)
# Per user and process: open sockets (tabs); the next one is closed with 4429 (0: no cap).
CHAT_MAX_SOCKETS_PER_USER = env_int("CHAT_MAX_SOCKETS_PER_USER", 20)
# Per contact, across sockets and processes: new chat requests allowed in any minute (0: no limit).
CHAT_REQUEST_RATE_PER_MINUTE = env_int("CHAT_REQUEST_RATE_PER_MINUTE", 10)
# Sign-in: this many failures for one account from one address lock it out for the window.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900)
# The one request header holding the client's address, set by the deployment's own proxy (for
# example X-Real-IP); empty: the peer's address only, and daphne reads no proxy header either.
TRUSTED_PROXY_HEADER = os.environ.get("TRUSTED_PROXY_HEADER", "").strip()
if TRUSTED_PROXY_HEADER and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", TRUSTED_PROXY_HEADER):
    raise ImproperlyConfigured("TRUSTED_PROXY_HEADER must be a header name such as X-Real-IP.")
TIME_ENTRY_ROUNDING_MINUTES = env_int("TIME_ENTRY_ROUNDING_MINUTES", 15)
# Each daphne process sweeps due chat timeouts itself; set 0 to leave it to `manage.py chat_sweeper`.
CHAT_SWEEPER_IN_PROCESS = env_bool("CHAT_SWEEPER_IN_PROCESS", True)

# --- django-axes: the sign-in lockout ---------------------------------------------------------
# In the database, so every daphne process counts the same failures and a restart forgets none.
# The LOGIN_* settings above stay the ones to set: axes reads them through accounts.signin.
AXES_ENABLED = LOGIN_FAILURE_LIMIT > 0
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = "accounts.signin.failure_limit"
AXES_COOLOFF_TIME = "accounts.signin.lockout_window"
# Per account and address, so a guesser elsewhere cannot lock a real user out of their own office.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "accounts.signin.canonical_username"
AXES_CLIENT_IP_CALLABLE = "accounts.signin.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.signin.lockout_response"
AXES_RESET_ON_SUCCESS = True
# A refused try during a lockout does not start the wait again, so "try again in N minutes" holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HTTP_RESPONSE_CODE = 429
# Only the attempts that count towards a lockout are kept: a row per sign-in would grow forever.
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AXES_VERBOSE = False
