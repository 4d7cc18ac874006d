"""Configuration read from the environment, with safe local defaults.

Names follow Heroku's conventions (``PORT``, ``DATABASE_URL``, ``REDIS_URL``)
so the service runs unchanged under a Procfile. A value that cannot be used
stops the process at start-up with a message that names the variable.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

DEFAULT_KEY_FILE = INSTANCE_DIR / "service_key"

HOST_KEY_POLICIES = ("accept-new", "strict")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _integer(environ, name, default, minimum=1):
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default

    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None

    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


def _delays(environ, name, default):
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default

    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(
            f"{name} must be seconds separated by commas, not {raw!r}"
        ) from None
    if any(delay < 0 for delay in delays):
        raise ConfigError(f"{name} may not hold a negative delay")
    return delays


def _database_url(environ):
    url = environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'deploy.db'}"

    # Heroku still hands out the scheme SQLAlchemy dropped in 1.4.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]

    if not url.startswith(("sqlite:", "postgresql:", "postgresql+")):
        raise ConfigError(
            "DATABASE_URL must name a SQLite or PostgreSQL database, "
            f"not {url.split(':', 1)[0]!r}"
        )
    return url


def _auth_url(environ):
    url = (environ.get("AUTH_URL") or "").strip()
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"AUTH_URL must be an http(s) URL, not {url!r}")
    return url or None


def _origins(environ):
    raw = environ.get("CORS_ORIGINS", "")
    return [origin.strip() for origin in raw.split(",") if origin.strip()]


def from_environment(environ=None):
    """Return the service's configuration as a mapping for ``app.config``.

    :raise ConfigError: when a variable is set to a value that cannot be used.
    """
    environ = os.environ if environ is None else environ

    policy = environ.get("SSH_HOST_KEY_POLICY", "accept-new").strip().lower()
    if policy not in HOST_KEY_POLICIES:
        raise ConfigError(
            f"SSH_HOST_KEY_POLICY must be one of {', '.join(HOST_KEY_POLICIES)}, "
            f"not {policy!r}"
        )

    redis_url = environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL must be a redis:// URL, not {redis_url!r}")
    queue = environ.get("RQ_QUEUE", "deployments").strip()
    if not queue:
        raise ConfigError("RQ_QUEUE may not be empty")
    log_level = environ.get("LOG_LEVEL", "INFO").strip().upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")

    return {
        "SQLALCHEMY_DATABASE_URI": _database_url(environ),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": redis_url,
        "RQ_QUEUE": queue,
        "LOG_LEVEL": log_level,
        "ARTIFACT_DIR": Path(environ.get("ARTIFACT_DIR", INSTANCE_DIR / "artifacts")),
        "SSH_PRIVATE_KEY": environ.get("SSH_PRIVATE_KEY") or None,
        "SSH_PRIVATE_KEY_FILE": Path(
            environ.get("SSH_PRIVATE_KEY_FILE") or DEFAULT_KEY_FILE
        ),
        "SSH_DEFAULT_KEY_FILE": DEFAULT_KEY_FILE,
        "SSH_HOST_KEY_POLICY": policy,
        "SSH_CONNECT_TIMEOUT": _integer(environ, "SSH_CONNECT_TIMEOUT", 15),
        "SSH_COMMAND_TIMEOUT": _integer(environ, "SSH_COMMAND_TIMEOUT", 120),
        "SSH_RETRY_DELAYS": _delays(environ, "SSH_RETRY_DELAYS", (1, 3, 9)),
        "MAX_CONTENT_LENGTH": _integer(environ, "MAX_CONTENT_LENGTH", 4 * 1024**3),
        "JOB_TIMEOUT": _integer(environ, "JOB_TIMEOUT", 1800),
        "STATUS_CHECK_SECONDS": _integer(environ, "STATUS_CHECK_SECONDS", 5, 0),
        "CORS_ORIGINS": _origins(environ),
        "AUTH_URL": _auth_url(environ),
        "AUTH_CACHE_SECONDS": _integer(environ, "AUTH_CACHE_SECONDS", 300),
        "AUTH_TIMEOUT": _integer(environ, "AUTH_TIMEOUT", 5),
    }


def web_settings(environ=None):
    """The port and process count gunicorn reads (``PORT``, ``WEB_CONCURRENCY``).

    :raise ConfigError: when either is not a number it can use.
    """
    environ = os.environ if environ is None else environ
    port = _integer(environ, "PORT", 8000)
    if port > 65535:
        raise ConfigError(f"PORT must be at most 65535, not {port}")
    return port, _integer(environ, "WEB_CONCURRENCY", 2)
