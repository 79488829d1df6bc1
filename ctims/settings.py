"""CTIMS settings: one module, configured by environment variables.

The embedded default (no variables set) runs on SQLite under var/ with Celery tasks executed
in-process. Production sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY, AUDIT_HMAC_KEY and DEBUG=False.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from ctims.broker import transport_options

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    """Read a boolean: only the words True and False are accepted, anything else fails loudly."""
    value = os.environ.get(name, default)
    if value not in ("True", "False"):
        raise ImproperlyConfigured(f"{name} must be True or False, not {value!r}")
    return value == "True"


def envint(name: str, default: str) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Off unless asked for: the debug pages show settings, the environment and local variables. `make run` and
# the tests turn it on explicitly.
DEBUG = envbool("DEBUG", "False")
VAR_DIR = Path(os.environ.get("CTIMS_VAR_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is False")
    SECRET_KEY = "insecure-development-key-only-for-the-embedded-default-0123456789abcdef"  # noqa: S105

# Loopback names only unless configured: links in emails never follow the Host header anyway (SITE_URL).
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
# Where people reach CTIMS: every link in an email (password reset, invitation) starts with it.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_countries",
    "ctims",
    "trials",
    "reads",
]

MIDDLEWARE = [
    "ctims.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "ctims.middleware.NulByteMiddleware",
    "ctims.middleware.NoStoreMiddleware",
    # Headers only: before the lean DICOMweb path below, so that its answers carry them too.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # DICOMweb requests with a Bearer token stop here: none of the session-based middleware below applies (it
    # sends django-csp's policy itself, built once).
    "trials.dicomweb.lean.DicomwebTokenMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    # /healthz, /readyz and /metrics on the loopback address, before CommonMiddleware checks the host.
    "ctims.middleware.LoopbackProbeMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "ctims.middleware.IdleSessionTimeoutMiddleware",
    "ctims.middleware.TwoFactorMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ctims.urls"
WSGI_APPLICATION = "ctims.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "trials.context_processors.inbox",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'ctims.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", "0"),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no var/
    # Writers wait for each other instead of failing at once with "database is locked": transactions take the
    # write lock when they begin (a read lock upgraded later cannot wait), and WAL lets readers go on meanwhile.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )

# How long a migration waits for a table lock on PostgreSQL before it gives up (lock_timeout, seconds; 0 waits
# for ever). Even a catalogue change (ALTER TABLE ... ADD COLUMN) needs an ACCESS EXCLUSIVE lock for a moment;
# while it waits behind a long reader (a backup's pg_dump, a long search), every new read of that table waits
# behind it. Giving up ends that: `migrate` stops at that migration and is run again (ctims/apps.py).
MIGRATE_LOCK_TIMEOUT_SECONDS = envint("MIGRATE_LOCK_TIMEOUT_SECONDS", "10")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "ctims.User"

AUTHENTICATION_BACKENDS = [
    "ctims.account_events.LockOutBackend",  # django-axes' AxesStandaloneBackend, noting what it refused
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "ctims.passwords.CharacterClassValidator"},
]
PASSWORD_HASHERS = envlist(
    "PASSWORD_HASHERS",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Sessions end after a period of inactivity (21 CFR Part 11 session controls).
SESSION_IDLE_TIMEOUT = timedelta(minutes=envint("SESSION_IDLE_MINUTES", "30"))
SESSION_COOKIE_AGE = 12 * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Lock-out after repeated failed logins (django-axes), per user name and address.
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# Two-factor sign-in (django-otp): TOTP apps and single-use recovery codes. Which people must use it is each
# trial's setting (Trial.two_factor_roles); operators (staff) always. The issuer names the account in the app.
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "CTIMS")
OTP_VERIFY_URL = "/accounts/two-factor/"
# The operators' admin never shows an authenticator's secret or its QR code.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
TWO_FACTOR_RECOVERY_CODES = 10

# Security headers. HSTS and secure cookies whenever DEBUG is off.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "False" if DEBUG else "True")
SECURE_HSTS_SECONDS = 0 if DEBUG else envint("SECURE_HSTS_SECONDS", "31536000")
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "False")
# HSTS preload is a commitment for the whole domain that each deployment makes for itself (README).
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Probes and the metrics scraper speak plain HTTP to the loopback address, behind the TLS proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if envbool("BEHIND_TLS_PROXY", "False"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The reverse proxy's own addresses: a request from one of them takes the client's address from X-Forwarded-For
# (ctims.account_events.forwarded_client_ip), for lock-outs and the audit trail. Without a proxy, none.
PROXY_ADDRESSES = envlist("PROXY_ADDRESSES", "127.0.0.1,::1") if envbool("BEHIND_TLS_PROXY", "False") else []
AXES_CLIENT_IP_CALLABLE = "ctims.account_events.forwarded_client_ip"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}


def _static_headers(headers, path: str, url: str) -> None:
    """WhiteNoise's hook for static files' headers: the upload page's de-identification worker (static/dist/deid/)
    compiles WebAssembly (Pyodide, Tesseract) and so does the viewer's image decoder worker (the codecs of
    compressed transfer syntaxes), so their scripts, and only they, are served with 'wasm-unsafe-eval' (a
    dedicated worker runs under the policy of its own script, not the page's). The CSP middleware leaves a
    header it finds."""
    if "/dist/deid/" in url or url.endswith("/dist/viewer/decodeImageFrameWorker.js"):
        from csp.utils import build_policy

        directives = CONTENT_SECURITY_POLICY["DIRECTIVES"]
        headers["Content-Security-Policy"] = build_policy(
            config={**directives, "script-src": [*directives["script-src"], "'wasm-unsafe-eval'"]}
        )


WHITENOISE_ADD_HEADERS_FUNCTION = _static_headers

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ko", _("Korean"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Seoul")
USE_I18N = True
USE_TZ = True
# Dates in ISO 8601 in every language (ctims/formats): not US order, the same on a Korean and an English page.
FORMAT_MODULE_PATH = ["ctims.formats"]


def image_store(bucket_variable: str, folder: str, *, or_within: str = "") -> dict:
    """One of the stores that trials.ingest.store writes atomically: the file system, or S3 through django-storages.

    `or_within`: without a bucket of its own, the store is the prefix `folder/` of that variable's bucket.
    """
    kind = os.environ.get("IMAGE_STORE", "filesystem")
    if kind == "filesystem":
        options = {"location": VAR_DIR / folder}
        if folder == "quarantine":
            # Raw, identified uploads: the application's own user only. (Django's default is 0644, and nginx's
            # user is in the application's group to send the de-identified instances.)
            options["file_permissions_mode"] = 0o600
        return {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": options}
    if kind != "s3":
        raise ImproperlyConfigured(f"IMAGE_STORE must be filesystem or s3, not {kind!r}")
    bucket, prefix = os.environ.get(bucket_variable, ""), ""
    if not bucket and or_within:
        bucket, prefix = os.environ.get(or_within, ""), folder
    if not bucket:
        raise ImproperlyConfigured(f"{bucket_variable} must be set when IMAGE_STORE is s3")
    options = {
        "bucket_name": bucket,
        "location": prefix,
        "endpoint_url": os.environ.get("S3_ENDPOINT_URL") or None,
        "region_name": os.environ.get("S3_REGION") or None,
        "access_key": os.environ.get("S3_ACCESS_KEY_ID") or None,
        "secret_key": os.environ.get("S3_SECRET_ACCESS_KEY") or None,
        "default_acl": None,
        "querystring_auth": True,
        "file_overwrite": False,
    }
    encryption = os.environ.get("S3_SSE", "")
    if encryption not in ("", "AES256", "aws:kms"):
        raise ImproperlyConfigured(f"S3_SSE must be empty, AES256 or aws:kms, not {encryption!r}")
    if encryption:
        options["object_parameters"] = {"ServerSideEncryption": encryption}
        if encryption == "aws:kms" and os.environ.get("S3_SSE_KMS_KEY_ID"):
            options["object_parameters"]["SSEKMSKeyId"] = os.environ["S3_SSE_KMS_KEY_ID"]
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# The trained data the server's OCR reads pixels with: the very models the upload page's OCR gets (the front-end
# build writes them there), so text is found alike at the site and here. Without them, the system's
# (tesseract-ocr-kor/-eng) are used and `manage.py check` warns (trials.W001).
OCR_MODELS_DIR = Path(os.environ.get("OCR_MODELS_DIR", BASE_DIR / "static" / "dist" / "deid" / "ocr"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": VAR_DIR / "media"}},
    # Compressed copies (gzip) beside each static file, which WhiteNoise sends to browsers that accept them: the
    # browser engine's memory snapshot and wasm files shrink to a quarter.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    # De-identified Part 10 files, and raw uploads until de-identified (never served, emptied as each file is
    # processed): on the file system under CTIMS_VAR_DIR, or in S3-compatible buckets (IMAGE_STORE=s3).
    "images": image_store("IMAGE_STORE_BUCKET", "images"),
    "quarantine": image_store("QUARANTINE_BUCKET", "quarantine"),
    # Sponsor transfers (zips), kept to be downloaded again; written once, like the images.
    "transfers": image_store("TRANSFER_STORE_BUCKET", "transfers", or_within="IMAGE_STORE_BUCKET"),
}
WHITENOISE_USE_FINDERS = DEBUG

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "ctims@localhost")
# The SMTP relay (EMAIL_BACKEND=...smtp.EmailBackend): the local mail server by default, or the hospital's.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "False")
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", "False")
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be True")
# Seconds to wait for the relay: a request that sends mail must not hang on one that does not answer.
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", "20")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "trials.api.auth.TrialTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "ctims.api_schema.AutoSchema",
    "EXCEPTION_HANDLER": "ctims.api_errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "ctims.pagination.Pagination",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CTIMS API",
    "DESCRIPTION": "Clinical trial image management: trials, sites, subjects, visits, roles, audit.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI is served from the installed sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Roles appear in several inputs and outputs (a membership's role, a trial's two-factor roles): one enum.
    "ENUM_NAME_OVERRIDES": {"RoleEnum": "trials.models.Role"},
}

# Origins of zero-footprint viewers (e.g. OHIF) allowed to call the DICOMweb roots from another origin.
DICOMWEB_CORS_ORIGINS = envlist("DICOMWEB_CORS_ORIGINS", "")
# The most results one QIDO-RS answer carries; past it the answer says so (Warning 299) and the client pages.
DICOMWEB_MAX_RESULTS = envint("DICOMWEB_MAX_RESULTS", "1000")
if DICOMWEB_MAX_RESULTS < 1:
    raise ImproperlyConfigured("DICOMWEB_MAX_RESULTS must be at least 1")
# How long a token client's DICOMweb permissions are kept between requests (a viewer's burst of frames); a
# revoked token or role reaches token clients within this many seconds. 0 reads them at every request.
DICOMWEB_ACCESS_CACHE_SECONDS = envint("DICOMWEB_ACCESS_CACHE_SECONDS", "5")
if DICOMWEB_ACCESS_CACHE_SECONDS < 0:
    raise ImproperlyConfigured("DICOMWEB_ACCESS_CACHE_SECONDS must be 0 or more")
# The reverse proxy's internal location that serves the image store (e.g. nginx `location /_images/ { internal;
# alias /var/lib/ctims/images/; }`): single-part instance answers are then handed to it by X-Accel-Redirect.
DICOMWEB_ACCEL_REDIRECT = os.environ.get("DICOMWEB_ACCEL_REDIRECT", "")

# Celery: a broker URL means real workers; without one, tasks run in-process (embedded default).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "celery")
# Redis: a task whose worker died (acks_late) is handed to another worker after this many seconds
# (ctims.broker, where the choice of the default is explained). RabbitMQ returns it at once and ignores this.
CELERY_BROKER_TRANSPORT_OPTIONS = transport_options(envint("CELERY_VISIBILITY_TIMEOUT", "300"))
# The ingest outbox's sweeper: a waiting file whose task was queued longer ago than this is queued again.
INGEST_REQUEUE_AFTER_SECONDS = envint("INGEST_REQUEUE_AFTER_SECONDS", "120")
# Threads per process that write, flush, read back and hash ingest files beside the thread that needs them
# (trials.ingest.store.io_pool); 0: that thread does it itself. Receiving (web processes): the upload request's
# files are hashed and written side by side. Processing (workers): off by default, because worker processes are
# as many as the cores and threads beside them only contend for the GIL and the cores (bench ingest --workers).
INGEST_RECEIVE_IO_THREADS = max(0, envint("INGEST_RECEIVE_IO_THREADS", "4"))
INGEST_PROCESSING_IO_THREADS = max(0, envint("INGEST_PROCESSING_IO_THREADS", "0"))
# Free heap each process keeps for the next file's buffers instead of giving it back to the kernel and mapping it
# again page by page (ctims.memory, glibc only); 0: glibc's own thresholds.
MALLOC_KEEP_FREE_MB = max(0, envint("MALLOC_KEEP_FREE_MB", "64"))
# An upload session that has received no file for this many hours is closed by the periodic job (what it received
# is kept and processed; an empty one is discarded), so that an abandoned upload does not keep its visit
# "uploading"; 0: never.
UPLOAD_IDLE_HOURS = envint("UPLOAD_IDLE_HOURS", "24")
if UPLOAD_IDLE_HOURS < 0:
    raise ImproperlyConfigured(f"UPLOAD_IDLE_HOURS must be 0 or more, not {UPLOAD_IDLE_HOURS}")
CELERY_BEAT_SCHEDULE = {
    "ingest-sweep": {"task": "trials.tasks.ingest_sweep", "schedule": max(10, INGEST_REQUEUE_AFTER_SECONDS // 2)},
    "uploads-idle-close": {"task": "trials.tasks.uploads_idle_close", "schedule": 15 * 60},
    "store-leftovers-sweep": {"task": "trials.tasks.store_leftovers_sweep", "schedule": 24 * 3600},
}
# Without a broker, each web process runs CELERY_BEAT_SCHEDULE's jobs itself, in a thread started by its first
# request (ctims.embedded_beat); off: nothing runs them (run `manage.py ingest_sweep` and the rest by hand).
EMBEDDED_PERIODIC_JOBS = envbool("EMBEDDED_PERIODIC_JOBS", "True")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None

# The audit chain's HMAC key (ctims.audit): kept outside the database, so that whoever can rewrite audit rows
# cannot recompute their hashes. AUDIT_HMAC_KEY_ID names the key each new event records (for key rotation);
# older keys stay verifiable through AUDIT_HMAC_OLD_KEYS ("id:key,id:key").
AUDIT_HMAC_KEY = os.environ.get("AUDIT_HMAC_KEY", "")
if not AUDIT_HMAC_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("AUDIT_HMAC_KEY must be set when DEBUG is False")
    AUDIT_HMAC_KEY = "insecure-development-audit-key"  # noqa: S105
AUDIT_HMAC_KEY_ID = os.environ.get("AUDIT_HMAC_KEY_ID", "1")
AUDIT_HMAC_OLD_KEYS = dict(item.partition(":")[::2] for item in envlist("AUDIT_HMAC_OLD_KEYS", ""))
if any(not key_id or not key for key_id, key in AUDIT_HMAC_OLD_KEYS.items()) or len(AUDIT_HMAC_KEY_ID) > 16:
    raise ImproperlyConfigured("AUDIT_HMAC_OLD_KEYS must be a list of id:key pairs, and key ids at most 16 characters")

# /metrics (ctims.metrics): a scraper sends "Authorization: Bearer <METRICS_TOKEN>"; without a token set, only
# requests from the loopback address are answered.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # highdicom logs each attribute module it copies at INFO: noise, with UIDs in it.
    "loggers": {"axes": {"level": "WARNING"}, "highdicom": {"level": "WARNING"}},
}
