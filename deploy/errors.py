"""The service's errors, and the one place that turns them into JSON.

Every error the API answers, including the framework's own 404, 405 and 413,
has the shape ``{"errors": [{"status": N, "detail": "..."}]}``.
"""

import logging

from flask import current_app, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success, with the detail the user reads."""

    status = 400

    def __init__(self, detail, headers=None):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401

    def __init__(self, detail):
        super().__init__(detail, headers={"WWW-Authenticate": "Token"})


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class ServiceUnavailable(ApiError):
    status = 503


class DeployError(Exception):
    """A deployment step failed; the message is what the user is told."""


class TransientError(DeployError):
    """A failure that may pass: the master VM was unreachable or slow."""


def error_response(status, detail, headers=None):
    response = jsonify({"errors": [{"status": status, "detail": detail}]})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _api_error(error):
    return error_response(error.status, error.detail, error.headers)


def _http_error(error):
    headers = {}
    detail = error.description
    if error.code == 405 and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    if error.code == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        detail = (
            f"The request is larger than the service accepts: at most {limit} "
            "bytes in all (MAX_CONTENT_LENGTH), and 500 KB for a text field."
        )
    return error_response(error.code, detail, headers)


def _unexpected_error(error):
    log.error("Unhandled error while answering a request", exc_info=error)
    return error_response(500, "The service failed to answer; the error is logged.")


def register_error_handlers(app):
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
