"""DeskChat settings, read from the environment.

Two modes:
- Embedded default (no DATABASE_URL, no REDIS_URL): a SQLite file and the in-memory channel
  layer in one process. Zero setup; what `scripts/run` starts.
- Production: DATABASE_URL=postgres://… selects PostgreSQL and REDIS_URL=redis://… selects
  channels-redis, so several daphne processes can share rooms and queues.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

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
    "django_htmx",
    "template_partials",
    "accounts",
    "tickets",
    "chat",
]

MIDDLEWARE = [
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
if DATABASE_URL:
    # Under ASGI, Django's persistent connections are not reused across requests, so connections
    # come from a psycopg pool instead (CONN_MAX_AGE must then be 0).
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    DATABASES["default"]["OPTIONS"] = {
        "pool": {"min_size": env_int("DB_POOL_MIN", 2), "max_size": env_int("DB_POOL_MAX", 20), "timeout": 10}
    }
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}{TEST_DB_SUFFIX}"}
else:
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            # IMMEDIATE takes the write lock when a transaction starts, so concurrent writers queue
            # instead of failing with "database is locked" halfway through; WAL lets readers go on.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not memory, so a test server in another process sees the test database.
            "TEST": {"NAME": str(SQLITE_PATH.with_name(f"test-deskchat{TEST_DB_SUFFIX}.sqlite3"))},
        }
    }
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
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

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
# Per connection: a burst of this many frames, refilled at this many per second.
CHAT_RATE_BURST = env_int("CHAT_RATE_BURST", 20)
CHAT_RATE_PER_SECOND = env_float("CHAT_RATE_PER_SECOND", 5.0)
# Per contact, across sockets and processes: new chat requests allowed in any minute (0: no limit).
CHAT_REQUEST_RATE_PER_MINUTE = env_int("CHAT_REQUEST_RATE_PER_MINUTE", 10)
# Sign-in: this many failures for one username from one address lock it out for the window.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900)
TIME_ENTRY_ROUNDING_MINUTES = env_int("TIME_ENTRY_ROUNDING_MINUTES", 15)
# Each daphne process sweeps due chat timeouts itself; set 0 to leave it to `manage.py chat_sweeper`.
CHAT_SWEEPER_IN_PROCESS = env_bool("CHAT_SWEEPER_IN_PROCESS", True)
