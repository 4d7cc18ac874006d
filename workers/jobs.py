"""RQ jobs. Each takes a deployment's id, never a token or a database object."""

import logging
from contextlib import contextmanager

from flask import current_app, has_app_context
from rq.exceptions import AbandonedJobError
from rq.timeouts import JobTimeoutException

from deploy.deployer import Deployer
from deploy.extensions import db
from deploy.models import BUSY_STATUSES, Deployment

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


def _carry_out(deployment_id, expected_status, operation):
    """Load the deployment and run one of its Deployer operations.

    A job finds its deployment in the status the request left it in; any
    other status means the job ran already, so it does nothing twice.
    """
    with app_context():
        # A forked work horse must not share its parent's database connections.
        db.engine.dispose(close=False)

        deployment = db.session.get(Deployment, deployment_id)
        if deployment is None:
            log.warning("Deployment %s no longer exists; nothing to do", deployment_id)
            return
        if deployment.status != expected_status:
            log.warning(
                "Deployment %s is %s, not %s; leaving it be",
                deployment_id,
                deployment.status,
                expected_status,
            )
            return

        try:
            getattr(Deployer(deployment), operation)()
        finally:
            db.session.remove()


def deploy_application(deployment_id):
    """Copy a deployment's application to its master VM and start it there."""
    _carry_out(deployment_id, "queued", "deploy")


def start_application(deployment_id):
    """Start the copy already on the master VM."""
    _carry_out(deployment_id, "starting", "start_again")


def stop_application(deployment_id):
    """Stop the application; its files stay on the master VM."""
    _carry_out(deployment_id, "stopping", "stop")


def withdraw_application(deployment_id):
    """Stop the application if it runs and remove its files."""
    _carry_out(deployment_id, "withdrawing", "withdraw")


def settle(deployment_id, reason):
    """Fail a deployment whose job ended without settling it itself."""
    with app_context():
        deployment = db.session.get(Deployment, deployment_id)
        if deployment is not None and deployment.status in BUSY_STATUSES:
            log.error("Deployment %s: %s", deployment_id, reason)
            deployment.status = "failed"
            deployment.error = reason
            db.session.commit()
        db.session.remove()


def settle_failed_job(job, connection, exc_type, exc_value, traceback):
    """RQ's failure callback: no job may leave its deployment busy for ever.

    The job marks its own deployment failed when a step fails; this catches
    what it cannot see itself: a job abandoned by a worker that died, and a
    job killed by its timeout.
    """
    if not job.args:
        return
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        reason = (
            "The worker running this deployment stopped answering (it was killed "
            "or lost Redis); try again."
        )
    elif exc_type is not None and issubclass(exc_type, JobTimeoutException):
        reason = f"The deployment did not end within {job.timeout} s (JOB_TIMEOUT)."
    else:
        reason = f"The deployment's job failed: {exc_value}"
    settle(job.args[0], reason)
