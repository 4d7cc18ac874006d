"""The web page at ``/``, the API documentation at ``/docs``, and CORS for
front-ends served from other origins.

The page and the documentation are static files from the top-level ``web/``
folder; they call the API with the token the user signs in with, so nothing
here needs one (the auth hook guards only ``/api``).
"""

import logging

from flask import Blueprint, send_from_directory
from flask_cors import CORS

import config

log = logging.getLogger(__name__)

WEB_DIR = config.BASE_DIR / "web"

# The page and the documentation load scripts, styles and images from the
# service alone, and talk to no one else: the browser refuses anything more,
# so a stray reference to a CDN shows at once instead of leaking requests.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

# What a browser on an allowed origin may send and read across origins.
CORS_HEADERS = ("Authorization", "Content-Type")
CORS_EXPOSED = ("Location",)
CORS_MAX_AGE = 600

web = Blueprint("web", __name__, static_folder=WEB_DIR, static_url_path="/web")


def _page(name):
    response = send_from_directory(WEB_DIR, name)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@web.get("/")
def index():
    return _page("index.html")


@web.get("/docs")
def docs():
    return _page("docs.html")


def register_web(app):
    """Serve the page at ``/``, the documentation at ``/docs``, and their files
    under ``/web/``."""
    app.register_blueprint(web)


def register_cors(app):
    """Let the origins in ``CORS_ORIGINS`` call the API from a browser.

    With none configured nothing is registered, and browsers keep every other
    origin out as they do by default. The headers go on errors too (a 401 or
    404 a front-end must be able to read), and ``Location`` is readable so a
    front-end can follow a deployment it asked for.
    """
    origins = app.config.get("CORS_ORIGINS") or []
    if not origins:
        return

    CORS(
        app,
        resources={r"/api/*": {"origins": origins}},
        allow_headers=list(CORS_HEADERS),
        expose_headers=list(CORS_EXPOSED),
        max_age=CORS_MAX_AGE,
    )
    log.info("CORS allows the API to be called from %s", ", ".join(origins))
