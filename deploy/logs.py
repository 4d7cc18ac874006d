"""Logging set-up for the entry points: gunicorn, the worker and scripts."""

import logging
import os

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def configure_logging():
    """Send the service's log records to stderr at ``LOG_LEVEL`` (INFO)."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(), format=FORMAT
    )
    # paramiko narrates every packet at DEBUG and every channel at INFO.
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    # Alembic announces its plugins at INFO in every process that imports it.
    logging.getLogger("alembic").setLevel(logging.WARNING)
