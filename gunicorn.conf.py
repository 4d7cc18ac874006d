"""gunicorn settings, read from the working folder by the Procfile's web line."""

import os

from deploy.logs import configure_logging

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Threads keep a slow upload or a status check over SSH from holding up
# other requests; two processes survive one of them dying.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 4
# Uploads of large artifacts over slow links take minutes.
timeout = 900
# Long ids and tokens get the service's own JSON errors, not gunicorn's HTML.
limit_request_line = 16384
limit_request_field_size = 65536
accesslog = "-"


def post_fork(server, worker):
    configure_logging()
