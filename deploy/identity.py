"""Tokens vouched for by an identity service (~okeanos Astakos, Keystone v2).

When ``AUTH_URL`` is set, a token the service does not know is checked with
``POST {AUTH_URL}/tokens``; the answer's ``access.user`` names the user, who
is created on first sight. Answers are cached per process, under the token's
digest, for ``AUTH_CACHE_SECONDS``, so the identity service is asked once per
token and period, not once per request.
"""

import json
import logging
import threading
import urllib.error
import urllib.request

from cachetools import TTLCache
from flask import current_app
from sqlalchemy.exc import IntegrityError

from deploy.errors import ServiceUnavailable
from deploy.extensions import db
from deploy.models import User

log = logging.getLogger(__name__)

# Tokens remembered per process; the oldest go first beyond this many.
CACHE_SIZE = 10_000

_cache_lock = threading.Lock()


def _cache():
    cache = current_app.extensions.get("identity_cache")
    if cache is None:
        cache = TTLCache(CACHE_SIZE, current_app.config["AUTH_CACHE_SECONDS"])
        current_app.extensions["identity_cache"] = cache
    return cache


def identity_user(token, digest):
    """Return the user the identity service says owns ``token``, or None.

    :raise ServiceUnavailable: the identity service could not be asked; a
        user whose token may well be valid must not be told it is not.
    """
    with _cache_lock:
        cached = _cache().get(digest)
    if cached is None:
        cached = _ask(token)
        if cached is None:
            return None
        with _cache_lock:
            _cache()[digest] = cached

    external_id, name = cached
    return _user_for(external_id, name)


def _ask(token):
    """POST the token to the identity service; return (user id, name) or None."""
    url = current_app.config["AUTH_URL"].rstrip("/") + "/tokens"
    body = json.dumps({"auth": {"token": {"id": token}}}).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(
            request, timeout=current_app.config["AUTH_TIMEOUT"]
        ) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code in (400, 401, 403, 404):
            return None
        log.warning("The identity service answered %s", error.code)
        raise _unavailable() from None
    except (OSError, ValueError) as error:
        log.warning("The identity service could not be asked: %s", error)
        raise _unavailable() from None

    try:
        user = answer["access"]["user"]
        external_id, name = str(user["id"]), str(user.get("name") or user["id"])
    except (KeyError, TypeError):
        log.warning("The identity service answered without access.user")
        raise _unavailable() from None
    return external_id, name


def _unavailable():
    return ServiceUnavailable(
        "The identity service that checks ~okeanos tokens cannot be reached; "
        "try again shortly."
    )


def _user_for(external_id, name):
    """The local user for an identity-service user, made on first sight."""
    user = db.session.execute(
        db.select(User).filter_by(external_id=external_id)
    ).scalar_one_or_none()
    if user is not None:
        return user

    # A local user may have the name already; the identity's user is another.
    wanted = name[:120]
    if db.session.execute(db.select(User).filter_by(name=wanted)).first():
        wanted = f"{name[:100]} ({external_id[:16]})"
    user = User(name=wanted, external_id=external_id)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        # A request in another process made the same user a moment ago.
        db.session.rollback()
        return db.session.execute(
            db.select(User).filter_by(external_id=external_id)
        ).scalar_one()
    log.info("User %s created for identity-service user %s", user.id, external_id)
    return user
