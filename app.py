"""The deploy service's Flask app.

gunicorn serves ``app:create_app()``, the worker builds the same app for its
jobs, and ``flask --app app ...`` runs the administrator commands.
"""

import logging
import sys

from flask import Flask

import config
from deploy import artifacts
from deploy.api import register_resources
from deploy.auth import authenticate
from deploy.cli import tokens, users
from deploy.errors import register_error_handlers
from deploy.extensions import db, migrate
from deploy.sshkeys import service_key
from deploy.web import register_cors, register_web

log = logging.getLogger(__name__)


def create_app(overrides=None):
    """Build the app from the environment, then apply ``overrides`` on top.

    A configuration the service cannot use ends the process with a message
    that names the variable, not a traceback.
    """
    try:
        return _build(overrides)
    except config.ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _build(overrides):
    app = Flask(__name__, instance_path=str(config.INSTANCE_DIR))
    app.request_class = artifacts.StreamingRequest
    app.config.update(config.from_environment())
    app.config.update(overrides or {})
    app.json.sort_keys = False
    # A path works with and without its trailing slash, and a POST is never
    # answered with a redirect.
    app.url_map.strict_slashes = False
    # Merging slashes answers with a redirect, which a POST must never get.
    app.url_map.merge_slashes = False

    _register_extensions(app)
    register_error_handlers(app)
    register_cors(app)
    app.before_request(authenticate)
    register_resources(app)
    register_web(app)
    app.cli.add_command(users)
    app.cli.add_command(tokens)

    with app.app_context():
        artifacts.remove_abandoned_uploads()
        service_key()
    return app


def _register_extensions(app):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:"):
        config.INSTANCE_DIR.mkdir(exist_ok=True)
    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(config.BASE_DIR / "migrations"), render_as_batch=True
    )
