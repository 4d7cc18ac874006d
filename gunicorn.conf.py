"""gunicorn settings, read from the working folder by the Procfile's web line."""

import sys

from config import ConfigError, web_settings
from deploy.logs import configure_logging

try:
    port, workers = web_settings()
except ConfigError as error:
    sys.exit(f"Configuration error: {error}")

bind = f"0.0.0.0:{port}"
# Threads keep a slow upload or a status check over SSH from holding up
# other requests; two processes survive one of them dying.
worker_class = "gthread"
threads = 4
# Uploads of large artifacts over slow links take minutes.
timeout = 900
# Long ids and tokens get the service's own JSON errors, not gunicorn's HTML.
limit_request_line = 16384
limit_request_field_size = 65536
accesslog = "-"
# gunicorn's control socket lives in the user's home, shared by every
# gunicorn that user runs; the service has no use for it.
control_socket_disable = True


def post_fork(server, worker):
    configure_logging()
