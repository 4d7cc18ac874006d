"""Logging set-up for the entry points: gunicorn, the worker and scripts."""

import logging
import os

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def configure_logging():
    """Send the service's log records to stderr at ``LOG_LEVEL`` (INFO)."""
    level = os.environ.get("LOG_LEVEL", "INFO").strip().upper()
    # A bad value is reported by the configuration, which names it; logging
    # must work to report it.
    if level not in logging.getLevelNamesMapping():
        level = "INFO"
    logging.basicConfig(level=level, format=FORMAT)
    # paramiko narrates every packet at DEBUG and every channel at INFO.
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    # Alembic announces its plugins at INFO in every process that imports it.
    logging.getLogger("alembic").setLevel(logging.WARNING)
