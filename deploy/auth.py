"""Token authentication, run before every API request."""

import hmac
import logging
import re

from flask import current_app, g, request

from deploy.errors import Unauthorized
from deploy.extensions import db
from deploy.identity import identity_user
from deploy.models import Token, token_digest

log = logging.getLogger(__name__)

SCHEME = "token"
# The scheme word, one space, the key: RFC 9110's token68, which holds the
# URL-safe base64 of the keys the service issues.
CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z]{1,32}) (?P<key>[A-Za-z0-9._~+/-]+=*)")
# Documentation, readable before one has a token.
PUBLIC_PATHS = ("/api/openapi.json",)


def _presented_token():
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("Send your token as 'Authorization: Token <key>'.")

    # Blanks around a header's value are not part of it (RFC 9110, 5.5), and
    # gunicorn removes them before the app sees the header.
    match = CREDENTIALS.fullmatch(header.strip(" \t"))
    if match is None:
        raise Unauthorized(
            "The Authorization header must read 'Token <key>': the word Token, "
            "one space, then the key, with nothing before or after."
        )
    if match["scheme"].lower() != SCHEME:
        raise Unauthorized(
            f"The Authorization scheme must be 'Token', not {match['scheme']!r}."
        )
    return match["key"]


def find_user(token):
    """Return the user a token belongs to, or None when it is not valid.

    A token the service issued is checked here; any other is asked of the
    identity service when ``AUTH_URL`` is set.

    :raise ServiceUnavailable: the identity service could not be asked.
    """
    digest = token_digest(token)
    record = db.session.execute(
        db.select(Token).filter_by(digest=digest)
    ).scalar_one_or_none()

    if record is None:
        if current_app.config["AUTH_URL"]:
            return identity_user(token, digest)
        return None

    # The lookup is by digest; comparing again in constant time costs nothing
    # and keeps the check honest should the lookup ever become a prefix match.
    if record.revoked_at is not None or not hmac.compare_digest(record.digest, digest):
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
