"""Token authentication, run before every API request."""

import hmac
import logging

from flask import g, request

from deploy.errors import Unauthorized
from deploy.extensions import db
from deploy.models import Token, token_digest

log = logging.getLogger(__name__)

SCHEME = "token"
# Documentation, readable before one has a token.
PUBLIC_PATHS = ("/api/openapi.json",)


def _presented_token():
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("Send your token as 'Authorization: Token <key>'.")

    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != SCHEME:
        raise Unauthorized("The Authorization header must read 'Token <key>'.")
    return parts[1]


def find_user(token):
    """Return the user a token belongs to, or None when it is unknown or revoked."""
    digest = token_digest(token)
    record = db.session.execute(
        db.select(Token).filter_by(digest=digest, revoked_at=None)
    ).scalar_one_or_none()

    # The lookup is by digest; comparing again in constant time costs nothing
    # and keeps the check honest should the lookup ever become a prefix match.
    if record is None or not hmac.compare_digest(record.digest, digest):
        return None
    return record.user


def authenticate():
    """Before-request hook: put the token's owner on ``g.user`` or answer 401."""
    if request.method == "OPTIONS" or not request.path.startswith("/api"):
        return
    if request.path in PUBLIC_PATHS:
        return

    user = find_user(_presented_token())
    if user is None:
        raise Unauthorized("The token is not valid.")
    g.user = user
