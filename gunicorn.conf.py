"""gunicorn settings read from the working folder; the Procfile sets the rest."""

from deploy.logs import configure_logging


def post_fork(server, worker):
    configure_logging()
