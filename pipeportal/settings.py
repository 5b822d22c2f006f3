"""Settings for the control plane (and the piped's Django shell): every knob comes from the environment.

Embedded defaults make one machine work with nothing configured (SQLite, local-memory cache, no broker);
production sets DATABASE_URL, REDIS_URL and SECRET_KEY. Any variable may instead be given as NAME_FILE,
the path of a file holding the value (Docker / ECS secrets).
"""

import os
import secrets
import sys
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    """Read NAME, or the contents of the file named by NAME_FILE."""
    if name in os.environ:
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path}: cannot read the file ({exc.strerror})") from exc
    return default


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: expected true or false")


def env_int(name: str, default: int) -> int:
    value = env(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a whole number") from exc


DEBUG = env_bool("DEBUG", False)
TESTING = "pytest" in sys.modules
VAR_DIR = Path(env("PIPEPORTAL_VAR_DIR", str(BASE_DIR / "var")))


def _dev_secret(filename: str) -> str:
    """A random secret kept under var/ so that a development machine stays logged in across restarts."""
    path = VAR_DIR / filename
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        path.write_text(value)
        path.chmod(0o600)
        return value


# SECRET_KEY is required outside debug. It stays empty (and Django refuses to sign anything) rather than
# failing at import, so that `manage.py piped` — which signs nothing — runs without it.
SECRET_KEY = env("SECRET_KEY") or (_dev_secret("secret_key") if DEBUG or TESTING else "")
# Piped keys and API keys are hashed with their own secret, so rotating SECRET_KEY logs no piped out.
PIPEPORTAL_KEY_HASH_SECRET = env("PIPEPORTAL_KEY_HASH_SECRET") or (
    _dev_secret("key_hash_secret") if DEBUG or TESTING else ""
)

PIPEPORTAL_BASE_URL = (env("PIPEPORTAL_BASE_URL", "http://127.0.0.1:8000") or "").rstrip("/")
_base = urlparse(PIPEPORTAL_BASE_URL)
ALLOWED_HOSTS = [h.strip() for h in (env("ALLOWED_HOSTS") or "").split(",") if h.strip()]
if not ALLOWED_HOSTS:
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", _base.hostname or "localhost"]
if TESTING:
    ALLOWED_HOSTS.append("testserver")
CSRF_TRUSTED_ORIGINS = [f"{_base.scheme}://{_base.netloc}"] if _base.scheme and _base.netloc else []

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "ninja",
    "apps.core",
    "apps.projects",
    "apps.accounts",
    "apps.pipeds",
    "apps.applications",
    "apps.deployments",
    "apps.pipelineconfig",
    "apps.webui",
]
PIPEPORTAL_ADMIN_ENABLED = env_bool("PIPEPORTAL_ADMIN_ENABLED", True)
if PIPEPORTAL_ADMIN_ENABLED:
    INSTALLED_APPS.insert(0, "django.contrib.admin")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "apps.accounts.middleware.PortalIdentityMiddleware",
]

if not (DEBUG or TESTING):
    # Static files from the app server itself (collected into STATIC_ROOT); runserver serves them in debug.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "pipeportal.urls"
WSGI_APPLICATION = "pipeportal.wsgi.application"
ASGI_APPLICATION = "pipeportal.asgi.application"

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
                "apps.accounts.context_processors.portal",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------

DATABASE_URL = env("DATABASE_URL")


def _database_from_url(url: str) -> dict:
    import dj_database_url

    config = dj_database_url.parse(
        url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60), conn_health_checks=True
    )
    if config["ENGINE"] == "django.db.backends.mysql":
        config.setdefault("OPTIONS", {})
        config["OPTIONS"].update({"charset": "utf8mb4", "init_command": "SET sql_mode='STRICT_TRANS_TABLES'"})
        config["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    return config


if DATABASE_URL:
    DATABASES = {"default": _database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("SQLITE_PATH", str(VAR_DIR / "pipeportal.sqlite3")),
            # Reused per thread: opening SQLite and setting its pragmas took a measurable part of every
            # piped API call.
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                # WAL, a generous busy timeout and IMMEDIATE transactions keep the portal, the piped API
                # and live refreshes from tripping over "database is locked".
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
    if not TESTING:
        VAR_DIR.mkdir(parents=True, exist_ok=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Control-plane config file (PipeCD's control-plane-config.yaml; apps/pipelineconfig, docs/config.md) ---
# PIPEPORTAL_CONFIG_FILE (a path) or PIPEPORTAL_CONFIG_DATA (the file, base64) is read here, `${VAR}`
# expanded from the environment. Its datastore becomes DATABASES unless DATABASE_URL is set; its filestore
# block ({type, config}) is PIPEPORTAL_FILESTORE; the whole spec is PIPEPORTAL_CONTROL_PLANE_CONFIG.
# A file with problems stops the start with all of them listed (file:line:col: key path: message).
PIPEPORTAL_CONTROL_PLANE_CONFIG = None
PIPEPORTAL_FILESTORE = None
_config_file, _config_data = env("PIPEPORTAL_CONFIG_FILE"), env("PIPEPORTAL_CONFIG_DATA")
if _config_file or _config_data:
    from apps.pipelineconfig.errors import ConfigError
    from apps.pipelineconfig.startup import control_plane_settings

    try:
        _control_plane = control_plane_settings(_config_file, _config_data, need_database=not DATABASE_URL)
    except ConfigError as exc:
        raise ImproperlyConfigured(f"The control-plane config cannot be used:\n{exc}") from None
    PIPEPORTAL_CONTROL_PLANE_CONFIG = _control_plane.spec
    PIPEPORTAL_FILESTORE = _control_plane.filestore
    if _control_plane.database_url:
        DATABASES = {"default": _database_from_url(_control_plane.database_url)}

# --- Cache, sessions, Celery ----------------------------------------------------------------------------

REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", "pipeportal"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Redis in front, the database behind: an Admin can end a person's sessions by deleting rows.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_AGE = env_int("SESSION_TTL_SECONDS", 7 * 24 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _base.scheme == "https"
if _base.scheme == "https":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# An https portal answers plain http with a redirect (the probes are answered before, see apps.ops);
# HSTS is off until set: once a browser has seen it, it refuses http to the host for that long.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _base.scheme == "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)

CELERY_BROKER_URL = env("CELERY_BROKER_URL") or REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = "cp"
CELERY_TASK_IGNORE_RESULT = True
# Without a broker the control plane's few jobs (fan-out, housekeeping) run inline.
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL == "memory://"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Control-plane beat: housekeeping jobs on queue `cp` (`celery -A pipeportal beat`).
# Commands left unhandled past PIPEPORTAL_COMMAND_TIMEOUT_SECONDS are swept to TIMEOUT this often.
PIPEPORTAL_COMMAND_TIMEOUT_SWEEP_SECONDS = env_int("PIPEPORTAL_COMMAND_TIMEOUT_SWEEP_SECONDS", 300)
CELERY_BEAT_SCHEDULE = {
    "deployments.time-out-stale-commands": {
        "task": "cp.deployments.time_out_stale_commands",
        "schedule": PIPEPORTAL_COMMAND_TIMEOUT_SWEEP_SECONDS,
        "options": {"queue": "cp"},
    },
}
# Retention (apps.ops, `manage.py prune`): stage logs, old deployments' details, commands, audit rows.
PIPEPORTAL_RETENTION_INTERVAL_SECONDS = env_int("PIPEPORTAL_RETENTION_INTERVAL_SECONDS", 3600)
CELERY_BEAT_SCHEDULE["ops.prune"] = {
    "task": "cp.ops.prune",
    "schedule": PIPEPORTAL_RETENTION_INTERVAL_SECONDS,
    "options": {"queue": "cp"},
}

# --- Auth -----------------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = []
LOGIN_URL = "accounts:login"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
if TESTING:
    # Hashing speed is not what the tests check; the hasher's behaviour is the same.
    PASSWORD_HASHERS.insert(0, "django.contrib.auth.hashers.MD5PasswordHasher")

# Failed static-admin logins allowed per project and client address within the window.
PIPEPORTAL_LOGIN_MAX_FAILURES = env_int("PIPEPORTAL_LOGIN_MAX_FAILURES", 5)
PIPEPORTAL_LOGIN_FAILURE_WINDOW = env_int("PIPEPORTAL_LOGIN_FAILURE_WINDOW", 300)
# Believe X-Forwarded-For for the client address (only behind a load balancer that sets it).
PIPEPORTAL_TRUST_X_FORWARDED_FOR = env_bool("PIPEPORTAL_TRUST_X_FORWARDED_FOR", False)
# A piped is ONLINE while its last heartbeat is younger than this.
PIPEPORTAL_PIPED_ONLINE_SECONDS = env_int("PIPEPORTAL_PIPED_ONLINE_SECONDS", 120)
# Commands nobody handled within this many seconds become TIMEOUT.
PIPEPORTAL_COMMAND_TIMEOUT_SECONDS = env_int("PIPEPORTAL_COMMAND_TIMEOUT_SECONDS", 24 * 3600)

# --- SSO (django-allauth) -------------------------------------------------------------------------------
# Identity providers come from the control-plane config's sharedSSOConfigs, from the PIPEPORTAL_OIDC_*,
# PIPEPORTAL_SAML_* and PIPEPORTAL_GITHUB_* variables below, or from SocialApps added in the admin
# (docs/sso.md). allauth only proves who someone is: apps.accounts.adapters turns that into a portal
# session with a role; allauth's own password login and signup pages are not mounted.

INSTALLED_APPS += [
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.saml",
    "allauth.socialaccount.providers.github",
]
MIDDLEWARE.append("allauth.account.middleware.AccountMiddleware")
AUTHENTICATION_BACKENDS = [
    # Django's ModelBackend, throttled per client address: the operators' console login is public.
    "apps.accounts.backends.ThrottledModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
SOCIALACCOUNT_ADAPTER = "apps.accounts.adapters.PortalSocialAccountAdapter"
SOCIALACCOUNT_ONLY = True
ACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_REQUESTS_TIMEOUT = env_int("PIPEPORTAL_SSO_HTTP_TIMEOUT", 10)
# Our provider classes honour `redirectUri`, GitHub Enterprise URLs, read GitHub teams and the SAML NameID.
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {"provider_class": "apps.accounts.providers.PortalOpenIDConnectProvider"},
    "github": {"provider_class": "apps.accounts.providers.PortalGitHubProvider"},
    "saml": {"provider_class": "apps.accounts.providers.PortalSAMLProvider"},
}


def _words(value: str | None) -> list[str]:
    return [w for w in (value or "").replace(",", " ").split() if w]


# One provider of each kind can be configured from the environment (apps.accounts.sso reads these).
PIPEPORTAL_SSO_FROM_ENV = []
if env("PIPEPORTAL_OIDC_ISSUER"):
    PIPEPORTAL_SSO_FROM_ENV.append(
        {
            "kind": "openid_connect",
            "name": env("PIPEPORTAL_OIDC_NAME") or "oidc",
            "issuer": env("PIPEPORTAL_OIDC_ISSUER"),
            "client_id": env("PIPEPORTAL_OIDC_CLIENT_ID", ""),
            "client_secret": env("PIPEPORTAL_OIDC_CLIENT_SECRET", ""),
            "scopes": _words(env("PIPEPORTAL_OIDC_SCOPES")) or ["openid", "profile", "email"],
            "redirect_uri": env("PIPEPORTAL_OIDC_REDIRECT_URI", ""),
            "roles_claim_key": env("PIPEPORTAL_OIDC_ROLES_CLAIM_KEY") or "groups",
            "token_auth_method": env("PIPEPORTAL_OIDC_TOKEN_AUTH_METHOD", ""),
        }
    )
if env("PIPEPORTAL_SAML_IDP_ENTITY_ID"):
    PIPEPORTAL_SSO_FROM_ENV.append(
        {
            "kind": "saml",
            "name": env("PIPEPORTAL_SAML_NAME") or "saml",
            "idp_entity_id": env("PIPEPORTAL_SAML_IDP_ENTITY_ID"),
            "idp_sso_url": env("PIPEPORTAL_SAML_IDP_SSO_URL", ""),
            "idp_x509_cert": env("PIPEPORTAL_SAML_IDP_X509CERT", ""),
            "idp_metadata_url": env("PIPEPORTAL_SAML_IDP_METADATA_URL", ""),
            "groups_attribute": env("PIPEPORTAL_SAML_GROUPS_ATTRIBUTE", ""),
            "sp_entity_id": env("PIPEPORTAL_SAML_SP_ENTITY_ID", ""),
        }
    )
if env("PIPEPORTAL_GITHUB_CLIENT_ID"):
    PIPEPORTAL_SSO_FROM_ENV.append(
        {
            "kind": "github",
            "name": env("PIPEPORTAL_GITHUB_NAME") or "github",
            "client_id": env("PIPEPORTAL_GITHUB_CLIENT_ID"),
            "client_secret": env("PIPEPORTAL_GITHUB_CLIENT_SECRET", ""),
            "base_url": env("PIPEPORTAL_GITHUB_BASE_URL", ""),
            "org": env("PIPEPORTAL_GITHUB_ORG", ""),
        }
    )

# --- Static files, i18n, logging ------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

SILENCED_SYSTEM_CHECKS = []
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    # allauth's EmailAddress has a conditional unique constraint MariaDB cannot enforce; SSO logins never
    # create e-mail addresses, so the warning does not concern us.
    SILENCED_SYSTEM_CHECKS.append("models.W036")

# --- Operations (apps.ops): probes, metrics, JSON logs, retention, filestore ----------------------------
# docs/operations.md explains these; docs/settings.md lists them.

INSTALLED_APPS.append("apps.ops")
# First of all: answers /healthz, /readyz and /metrics before host checks, sessions and redirects.
MIDDLEWARE.insert(0, "apps.ops.middleware.OpsMiddleware")

# Short connection timeouts, so a dead database or Redis makes /readyz (and requests) fail fast.
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 5)
REDIS_SOCKET_TIMEOUT = env_int("REDIS_SOCKET_TIMEOUT", 5)
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
if CACHES["default"]["BACKEND"].endswith("RedisCache"):
    CACHES["default"].setdefault("OPTIONS", {}).update(
        {"socket_connect_timeout": REDIS_SOCKET_TIMEOUT, "socket_timeout": REDIS_SOCKET_TIMEOUT}
    )

# Log lines: `plain` for people, `json` (one object per line, with deployment and stage ids) for machines.
LOG_FORMAT = (env("LOG_FORMAT") or "plain").lower()
if LOG_FORMAT == "json":
    LOGGING["formatters"]["json"] = {"()": "apps.ops.logging.JsonFormatter"}
    LOGGING["handlers"]["console"]["formatter"] = "json"
    # Celery would otherwise replace the root handler with its own plain format in workers and beat.
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False
elif LOG_FORMAT != "plain":
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: expected plain or json")

# /metrics: unset = open (restrict it at the network then); set = `Authorization: Bearer <token>`.
PIPEPORTAL_METRICS_TOKEN = env("PIPEPORTAL_METRICS_TOKEN") or ""
PIPEPORTAL_METRICS_STAGE_WINDOW_SECONDS = env_int("PIPEPORTAL_METRICS_STAGE_WINDOW_SECONDS", 24 * 3600)

# Retention in days (0 keeps forever); the newest deployments of every application are always kept whole.
PIPEPORTAL_RETENTION_KEEP_DEPLOYMENTS = env_int("PIPEPORTAL_RETENTION_KEEP_DEPLOYMENTS", 20)
PIPEPORTAL_RETENTION_STAGE_LOG_DAYS = env_int("PIPEPORTAL_RETENTION_STAGE_LOG_DAYS", 90)
PIPEPORTAL_RETENTION_DEPLOYMENT_DETAIL_DAYS = env_int("PIPEPORTAL_RETENTION_DEPLOYMENT_DETAIL_DAYS", 180)
PIPEPORTAL_RETENTION_COMMAND_DAYS = env_int("PIPEPORTAL_RETENTION_COMMAND_DAYS", 30)
PIPEPORTAL_RETENTION_AUDIT_DAYS = env_int("PIPEPORTAL_RETENTION_AUDIT_DAYS", 365)
PIPEPORTAL_RETENTION_BATCH_SIZE = max(1, env_int("PIPEPORTAL_RETENTION_BATCH_SIZE", 500))

# Filestore (live-state snapshots, command outputs): these win over the control-plane config's
# `filestore`; with neither, a local folder under PIPEPORTAL_VAR_DIR (apps/ops/filestore.py).
PIPEPORTAL_FILESTORE_TYPE = env("PIPEPORTAL_FILESTORE_TYPE") or ""
PIPEPORTAL_FILESTORE_BUCKET = env("PIPEPORTAL_FILESTORE_BUCKET") or ""
PIPEPORTAL_FILESTORE_REGION = env("PIPEPORTAL_FILESTORE_REGION") or ""
PIPEPORTAL_FILESTORE_PREFIX = env("PIPEPORTAL_FILESTORE_PREFIX") or ""
PIPEPORTAL_FILESTORE_ENDPOINT_URL = env("PIPEPORTAL_FILESTORE_ENDPOINT_URL") or ""
PIPEPORTAL_FILESTORE_DIR = Path(env("PIPEPORTAL_FILESTORE_DIR") or str(VAR_DIR / "filestore"))

# --- Piped agent (`manage.py piped`; apps/pipedagent, docs/piped.md) -------------------------------------
# The piped reads these besides its piped-config.yaml. It never touches the database.
INSTALLED_APPS.append("apps.pipedagent")


def _env_seconds(name: str, default: float) -> float:
    value = env(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a number of seconds") from exc


# Git clones and deploy sources; default: <system temp>/pipeportal-piped.
PIPED_WORK_DIR = env("PIPED_WORK_DIR") or ""
# How often the piped asks for commands (and webhook fetch requests), sends heartbeats, and looks at its
# running deployments; how long a stage claim lasts (renewed while the stage runs).
PIPED_COMMAND_POLL_SECONDS = _env_seconds("PIPED_COMMAND_POLL_SECONDS", 1.0)
PIPED_HEARTBEAT_SECONDS = _env_seconds("PIPED_HEARTBEAT_SECONDS", 10.0)
PIPED_DISPATCH_SECONDS = _env_seconds("PIPED_DISPATCH_SECONDS", 1.0)
PIPED_CLAIM_LEASE_SECONDS = _env_seconds("PIPED_CLAIM_LEASE_SECONDS", 10.0)
PIPED_LOG_FLUSH_SECONDS = _env_seconds("PIPED_LOG_FLUSH_SECONDS", 0.5)
# Longest pause of a waiting stage between two looks (WAIT, WAIT_APPROVAL, ECS stability).
PIPED_STAGE_TICK_SECONDS = _env_seconds("PIPED_STAGE_TICK_SECONDS", 5.0)
# Overrides the config's syncInterval when set (tests, the demo).
PIPED_SYNC_INTERVAL_SECONDS = _env_seconds("PIPED_SYNC_INTERVAL_SECONDS", 0)
PIPED_APP_REFRESH_SECONDS = _env_seconds("PIPED_APP_REFRESH_SECONDS", 60.0)
# A fetch slower than this fails; a failing remote is retried after base * 2^(failures-1), at most max.
PIPED_GIT_TIMEOUT_SECONDS = _env_seconds("PIPED_GIT_TIMEOUT_SECONDS", 120.0)
PIPED_GIT_RETRY_BASE_SECONDS = _env_seconds("PIPED_GIT_RETRY_BASE_SECONDS", 5.0)
PIPED_GIT_RETRY_MAX_SECONDS = _env_seconds("PIPED_GIT_RETRY_MAX_SECONDS", 300.0)
# Threads of the embedded (or --role worker) Celery worker.
PIPED_WORKER_CONCURRENCY = env_int("PIPED_WORKER_CONCURRENCY", 8)
# ECS: how long a task set may take to become steady, how often to look; botocore's attempts per call.
PIPED_ECS_STABLE_TIMEOUT_SECONDS = _env_seconds("PIPED_ECS_STABLE_TIMEOUT_SECONDS", 1800.0)
PIPED_ECS_POLL_SECONDS = _env_seconds("PIPED_ECS_POLL_SECONDS", 5.0)
PIPED_AWS_MAX_ATTEMPTS = env_int("PIPED_AWS_MAX_ATTEMPTS", 5)
# --- Piped: live state and drift detection (issue 5) ---
# How often the piped reports each application's live state (service, task sets, tasks, traffic) and
# compares the live definitions with Git (drift); 0 turns either off.
PIPED_LIVESTATE_SECONDS = _env_seconds("PIPED_LIVESTATE_SECONDS", 15.0)
PIPED_DRIFT_SECONDS = _env_seconds("PIPED_DRIFT_SECONDS", 60.0)
# --- Piped: metrics (issue 8; docs/operations.md) ---
# Where the piped serves Prometheus metrics (HOST:PORT, e.g. 127.0.0.1:9102); empty: not served.
PIPED_METRICS_ADDR = env("PIPED_METRICS_ADDR") or ""

# --- Notifications (apps.notifications; docs/notifications.md) ---
INSTALLED_APPS.append("apps.notifications")
# The piped's deliveries: per-attempt timeout, attempts and backoff (network errors, 5xx, 429 are retried:
# base * 2^(n-1), at most max), sender threads, queue size, how often attempts are reported, and how long
# a stopping piped keeps delivering. The control plane's PIPED_OFFLINE deliveries use the same knobs.
PIPED_NOTIFY_TIMEOUT_SECONDS = _env_seconds("PIPED_NOTIFY_TIMEOUT_SECONDS", 10.0)
PIPED_NOTIFY_MAX_ATTEMPTS = env_int("PIPED_NOTIFY_MAX_ATTEMPTS", 5)
PIPED_NOTIFY_RETRY_BASE_SECONDS = _env_seconds("PIPED_NOTIFY_RETRY_BASE_SECONDS", 1.0)
PIPED_NOTIFY_RETRY_MAX_SECONDS = _env_seconds("PIPED_NOTIFY_RETRY_MAX_SECONDS", 60.0)
PIPED_NOTIFY_WORKERS = env_int("PIPED_NOTIFY_WORKERS", 4)
PIPED_NOTIFY_QUEUE_SIZE = env_int("PIPED_NOTIFY_QUEUE_SIZE", 1000)
PIPED_NOTIFY_FLUSH_SECONDS = _env_seconds("PIPED_NOTIFY_FLUSH_SECONDS", 1.0)
PIPED_NOTIFY_SHUTDOWN_SECONDS = _env_seconds("PIPED_NOTIFY_SHUTDOWN_SECONDS", 10.0)
# Slack's Web API base (chat.postMessage), for a proxy or a test server.
PIPED_SLACK_API_URL = env("PIPED_SLACK_API_URL") or "https://slack.com/api"
# The control plane's own receivers (PIPED_OFFLINE): a webhook (signed with the secret) and/or Slack.
PIPEPORTAL_NOTIFY_WEBHOOK_URL = env("PIPEPORTAL_NOTIFY_WEBHOOK_URL") or ""
PIPEPORTAL_NOTIFY_WEBHOOK_SIGNING_SECRET = env("PIPEPORTAL_NOTIFY_WEBHOOK_SIGNING_SECRET") or ""
PIPEPORTAL_NOTIFY_SLACK_HOOK_URL = env("PIPEPORTAL_NOTIFY_SLACK_HOOK_URL") or ""
# How often beat looks for pipeds whose heartbeat stopped; how long events and attempts are kept (0: ever).
PIPEPORTAL_NOTIFY_OFFLINE_CHECK_SECONDS = env_int("PIPEPORTAL_NOTIFY_OFFLINE_CHECK_SECONDS", 60)
PIPEPORTAL_NOTIFY_RETENTION_DAYS = env_int("PIPEPORTAL_NOTIFY_RETENTION_DAYS", 30)
CELERY_BEAT_SCHEDULE["notifications.detect-offline-pipeds"] = {
    "task": "cp.notifications.detect_offline_pipeds",
    "schedule": PIPEPORTAL_NOTIFY_OFFLINE_CHECK_SECONDS,
    "options": {"queue": "cp"},
}
CELERY_BEAT_SCHEDULE["notifications.prune"] = {
    "task": "cp.notifications.prune",
    "schedule": 3600,
    "options": {"queue": "cp"},
}
