"""RQ jobs. Each takes a deployment's id, never a token or a database object."""

import logging
from contextlib import contextmanager

from flask import current_app, has_app_context

from deploy.deployer import Deployer
from deploy.extensions import db
from deploy.models import Deployment

log = logging.getLogger(__name__)

_app = None


@contextmanager
def app_context():
    """Run inside the Flask app, building one if the worker did not push one."""
    global _app
    if has_app_context():
        yield current_app
        return

    if _app is None:
        from app import create_app

        _app = create_app()
    with _app.app_context():
        yield _app


def deploy_application(deployment_id):
    """Copy a deployment's application to its master VM and start it there."""
    with app_context():
        # A forked work horse must not share its parent's database connections.
        db.engine.dispose(close=False)

        deployment = db.session.get(Deployment, deployment_id)
        if deployment is None:
            log.warning("Deployment %s no longer exists; nothing to do", deployment_id)
            return
        if deployment.status != "queued":
            log.warning(
                "Deployment %s is %s, not queued; not deploying it again",
                deployment_id,
                deployment.status,
            )
            return

        try:
            Deployer(deployment).run()
        finally:
            db.session.remove()
